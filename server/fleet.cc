#include "server/fleet.h"

#include <algorithm>
#include <optional>

#include "collectors/policy.h"
#include "server/aggregator.h"
#include "server/store_sql.h"

namespace vigil::server {

google::protobuf::Timestamp FromMillis(int64_t ms) {
  google::protobuf::Timestamp t;
  t.set_seconds(ms / 1000);
  t.set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
  return t;
}

int64_t ToMillis(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

namespace {

v1::HistoryEntry ToHistoryEntry(const HistoryRow& h) {
  v1::HistoryEntry e;
  e.set_sequence(h.sequence);
  *e.mutable_issued_at() = FromMillis(h.issued_at_ms);
  *e.mutable_received_at() = FromMillis(h.received_at_ms);
  e.set_status(h.status);
  for (const auto& c : h.failing_checks) e.add_failing_checks(c);
  return e;
}

}  // namespace

v1::Alert ToAlert(const AlertRecord& a, const std::string& instance) {
  v1::Alert out;
  out.set_id(a.id);
  out.set_kind(a.kind);
  out.set_device_id(a.device_id);
  out.set_hostname(a.hostname);
  out.set_status(a.status);
  out.set_previous_status(a.previous);
  *out.mutable_at() = FromMillis(a.at_ms);
  out.set_reason(a.reason);
  for (const auto& c : a.failing_checks) out.add_failing_checks(c);
  out.set_idempotency_key("vigil-alert-" + instance + "-" + std::to_string(a.id));
  return out;
}

std::vector<std::string> AgentProblems(const v1::Attestation& latest) {
  std::vector<std::string> problems;
  std::string errors;
  for (const auto& c : latest.checks()) {
    // An excepted check keeps the failure's status in its reason; only ERROR means no evidence.
    if (c.status() != v1::ERROR) continue;
    errors += (errors.empty() ? "" : ", ") + c.check();
  }
  if (!errors.empty()) problems.push_back("could not collect evidence for " + errors);
  const auto& h = latest.agent_health();
  if (h.report_failures() > 0) {
    problems.push_back(std::to_string(h.report_failures()) +
                       " report attempts failed in a row before this attestation");
  }
  if (h.outbox_dropped() > 0) {
    problems.push_back(std::to_string(h.outbox_dropped()) +
                       " attestations dropped from a full outbox while offline");
  }
  if (!h.last_error().empty()) problems.push_back("last error: " + h.last_error());
  return problems;
}

Fleet::Fleet(Store& store, const Clock& clock, PolicyState& policy, Counters& counters)
    : store_(store), clock_(clock), policy_(policy), counters_(counters) {}

int64_t Fleet::StaleBefore() const { return clock_.NowMillis() - policy_.Get()->CheckinWindowMs(); }

v1::DeviceStatus Fleet::EffectiveStatus(const DeviceRecord& d) const {
  return EffectiveStatusOf(d, StaleBefore());
}

v1::DeviceSummary Fleet::ToSummary(const DeviceRecord& d) const {
  v1::DeviceSummary s;
  s.set_device_id(d.id);
  s.set_hostname(d.hostname);
  s.set_status(EffectiveStatus(d));
  s.set_os(d.platform.os());
  s.set_os_name(d.platform.os_name());
  *s.mutable_enrolled_at() = FromMillis(d.enrolled_at_ms);
  if (d.last_seen_ms) *s.mutable_last_seen() = FromMillis(d.last_seen_ms);
  s.set_last_sequence(d.last_sequence);
  for (const auto& c : d.failing_checks) s.add_failing_checks(c);
  for (const auto& t : d.tags) s.add_tags(t);
  switch (s.status()) {
    case v1::REVOKED:
      s.set_status_reason("revoked: " + d.revoke_reason);
      break;
    case v1::PENDING:
      s.set_status_reason("enrolled, waiting for an admin's approval");
      break;
    case v1::TAMPERED:
      s.set_status_reason(d.tamper_reason);
      break;
    case v1::STALE:
      s.set_status_reason("no attestation within the check-in window of " +
                          std::to_string(policy_.Get()->CheckinWindowMs() / 1000) + " s");
      break;
    case v1::UNKNOWN:
      s.set_status_reason("enrolled, never reported");
      break;
    default:
      s.set_status_reason(d.status_reason);
      break;
  }
  return s;
}

Result<v1::ListDevicesResponse> Fleet::ListDevices(const v1::ListDevicesRequest& req) {
  if (!req.failing_check().empty() && !IsValidCheckId(req.failing_check())) {
    return Status::InvalidArgument("failing_check: '" + req.failing_check() +
                                   "' is not a check id (lower-case letters, digits, '_')");
  }
  DeviceFilter f;
  f.status = req.status();
  f.failing_check = req.failing_check();
  f.os = req.os();
  f.after_id = req.page_token();
  if (!req.tag().empty() && !store_sql::IsValidTag(req.tag())) {
    return Status::InvalidArgument("tag: '" + req.tag() +
                                   "' is not a tag (1..64 of A-Z a-z 0-9 . _ : = -)");
  }
  f.tag = req.tag();
  if (req.has_not_seen_since()) {
    f.not_seen_since_ms = ToMillis(req.not_seen_since());
    if (f.not_seen_since_ms <= 0) return Status::InvalidArgument("not_seen_since: before 1970");
  }
  f.limit = req.limit() == 0 ? 1000 : std::min<uint32_t>(req.limit(), 10000);
  f.stale_before_ms = StaleBefore();
  auto rows = store_.ListDevices(f);
  if (!rows.ok()) return rows.status();
  v1::ListDevicesResponse resp;
  for (const auto& d : *rows) *resp.add_devices() = ToSummary(d);
  if (rows->size() == f.limit) resp.set_next_page_token(rows->back().id);
  return resp;
}

Result<v1::GetDeviceResponse> Fleet::GetDevice(const v1::GetDeviceRequest& req) {
  if (req.device_id().empty()) return Status::InvalidArgument("device_id is required");
  auto found = store_.GetDevice(req.device_id());
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no device '" + req.device_id() + "'");
  const DeviceRecord& d = **found;
  v1::GetDeviceResponse resp;
  *resp.mutable_device() = ToSummary(d);
  *resp.mutable_platform() = d.platform;
  resp.set_policy_version(d.policy_version);
  v1::Attestation latest;
  if (!d.latest_attestation.empty() && latest.ParseFromString(d.latest_attestation)) {
    *resp.mutable_checks() = latest.checks();
    if (latest.has_agent_health()) *resp.mutable_agent_health() = latest.agent_health();
    for (auto& p : AgentProblems(latest)) resp.add_agent_problems(std::move(p));
  }
  uint32_t limit = req.history_limit() == 0 ? 20 : std::min<uint32_t>(req.history_limit(), 1000);
  auto history = store_.History(d.id, limit);
  if (!history.ok()) return history.status();
  for (const auto& h : *history) *resp.add_history() = ToHistoryEntry(h);
  auto events = store_.Events(d.id, 50);
  if (!events.ok()) return events.status();
  for (const auto& ev : *events) {
    auto* e = resp.add_events();
    *e->mutable_at() = FromMillis(ev.at_ms);
    e->set_kind(ev.kind);
    e->set_detail(ev.detail);
  }
  return resp;
}

Result<v1::SummaryResponse> Fleet::Summary(const v1::SummaryRequest&) {
  auto counts = store_.CountByStatus(StaleBefore());
  if (!counts.ok()) return counts.status();
  v1::SummaryResponse resp;
  uint64_t total = 0;
  for (auto s : {v1::COMPLIANT, v1::NON_COMPLIANT, v1::UNKNOWN, v1::STALE, v1::TAMPERED,
                 v1::EXCEPTED, v1::PENDING, v1::REVOKED}) {
    uint64_t n = 0;
    for (const auto& [status, count] : *counts) {
      if (status == s) n += count;
    }
    auto* c = resp.add_by_status();
    c->set_status(s);
    c->set_count(n);
    total += n;
  }
  resp.set_total(total);
  const auto snapshot = policy_.Get();
  resp.set_policy_version("v" + std::to_string(snapshot->version().number) + " (" +
                          snapshot->version().set_version + ")");
  return resp;
}

Result<v1::DeviceActionResponse> Fleet::Summarize(const std::string& device_id) {
  auto found = store_.GetDevice(device_id);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no device '" + device_id + "'");
  v1::DeviceActionResponse resp;
  *resp.mutable_device() = ToSummary(**found);
  return resp;
}

Result<v1::DeviceActionResponse> Fleet::ApproveDevice(const v1::DeviceActionRequest& req,
                                                      const std::string& actor) {
  if (req.device_id().empty()) return Status::InvalidArgument("device_id is required");
  auto found = store_.GetDevice(req.device_id());
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no device '" + req.device_id() + "'");
  if ((*found)->revoked_at_ms != 0) {
    return Status::FailedPrecondition("device " + req.device_id() +
                                      " is revoked; a revoked device cannot be approved");
  }
  if (!(*found)->pending) return Summarize(req.device_id());  // nothing to do
  AuditRecord audit{clock_.NowMillis(), actor,        "device.approve",
                    req.device_id(),    req.reason(), true};
  if (Status s = store_.ApproveDevice(req.device_id(), audit); !s.ok()) return s;
  counters_.Inc("device.approved");
  return Summarize(req.device_id());
}

Result<v1::DeviceActionResponse> Fleet::RevokeDevice(const v1::DeviceActionRequest& req,
                                                     const std::string& actor) {
  if (req.device_id().empty()) return Status::InvalidArgument("device_id is required");
  if (req.reason().empty() || req.reason().size() > 1000) {
    return Status::InvalidArgument(
        "reason: required (1..1000 characters), it goes in the audit log");
  }
  int64_t now = clock_.NowMillis();
  AuditRecord audit{now, actor, "device.revoke", req.device_id(), req.reason(), true};
  if (Status s = store_.RevokeDevice(req.device_id(), req.reason(), now, audit); !s.ok()) return s;
  counters_.Inc("device.revoked");
  return Summarize(req.device_id());
}

Result<v1::ListAuditResponse> Fleet::ListAudit(const v1::ListAuditRequest& req) {
  uint32_t limit = req.limit() == 0 ? 1000 : std::min<uint32_t>(req.limit(), 10000);
  auto entries = store_.ListAudit(req.after_id(), limit);
  if (!entries.ok()) return entries.status();
  v1::ListAuditResponse resp;
  for (auto& e : *entries) *resp.add_entries() = std::move(e);
  return resp;
}

Result<v1::DeviceHistoryResponse> Fleet::DeviceHistory(const v1::DeviceHistoryRequest& req) {
  if (req.device_id().empty()) return Status::InvalidArgument("device_id is required");
  auto found = store_.GetDevice(req.device_id());
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no device '" + req.device_id() + "'");
  int64_t since = req.has_since() ? ToMillis(req.since()) : 0;
  int64_t until = req.has_until() ? ToMillis(req.until()) : 0;
  if (req.has_since() && req.has_until() && until <= since) {
    return Status::InvalidArgument("until must be after since");
  }
  uint32_t limit = req.limit() == 0 ? 100 : std::min<uint32_t>(req.limit(), 10000);
  auto rows = store_.HistoryRange(req.device_id(), since, until, req.before_sequence(), limit);
  if (!rows.ok()) return rows.status();
  v1::DeviceHistoryResponse resp;
  for (const auto& h : *rows) *resp.add_entries() = ToHistoryEntry(h);
  if (rows->size() == limit) resp.set_next_before_sequence(rows->back().sequence);
  return resp;
}

Result<v1::ListAlertsResponse> Fleet::ListAlerts(const v1::ListAlertsRequest& req) {
  uint32_t limit = req.limit() == 0 ? 100 : std::min<uint32_t>(req.limit(), 10000);
  auto alerts = store_.ListAlerts(req.after_id(), limit, req.device_id());
  if (!alerts.ok()) return alerts.status();
  auto instance = store_.InstanceId();
  if (!instance.ok()) return instance.status();
  v1::ListAlertsResponse resp;
  for (const auto& a : *alerts) *resp.add_alerts() = ToAlert(a, *instance);
  auto sinks = store_.ListSinks();
  if (!sinks.ok()) return sinks.status();
  auto last = store_.LastAlertId();
  if (!last.ok()) return last.status();
  for (const auto& c : *sinks) {
    auto type = sink_types_.find(c.sink);
    if (type == sink_types_.end()) continue;  // no longer configured
    auto* s = resp.add_sinks();
    s->set_name(c.sink);
    s->set_type(type->second);
    s->set_delivered_id(c.delivered_id);
    s->set_pending(*last > c.delivered_id ? *last - c.delivered_id : 0);
    s->set_attempts(c.attempts);
    s->set_last_error(c.last_error);
    if (c.next_attempt_ms) *s->mutable_next_attempt() = FromMillis(c.next_attempt_ms);
    s->set_failed(c.failed);
  }
  return resp;
}

Status Fleet::ExportEvidence(const v1::ExportRequest& req,
                             const std::function<bool(const v1::ExportRecord&)>& emit) {
  int64_t since = req.has_since() ? ToMillis(req.since()) : 0;
  int64_t until = req.has_until() ? ToMillis(req.until()) : 0;
  if (req.has_since() && req.has_until() && until <= since) {
    return Status::InvalidArgument("until must be after since");
  }
  if (!req.tag().empty() && !store_sql::IsValidTag(req.tag())) {
    return Status::InvalidArgument("tag: '" + req.tag() + "' is not a tag");
  }
  const auto snapshot = policy_.Get();
  const int64_t now = clock_.NowMillis();
  // Pages of attestations in (device, sequence) order; a device's summary is read once, when
  // its first row arrives, and filters by status and tag apply to it.
  std::string device_id;
  uint64_t sequence = 0;
  std::string current;
  std::optional<v1::DeviceSummary> summary;  // nullopt: the current device is filtered out
  DeviceRecord judged;                       // the current device, to judge its evidence
  constexpr uint32_t kPage = 500;
  for (;;) {
    auto rows = store_.ExportRows(device_id, sequence, since, until, kPage);
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) {
      device_id = row.device_id;
      sequence = row.sequence;
      if (row.device_id != current) {
        current = row.device_id;
        summary.reset();
        auto found = store_.GetDevice(row.device_id);
        if (!found.ok()) return found.status();
        if (found->has_value()) {
          v1::DeviceSummary s = ToSummary(**found);
          bool tagged = req.tag().empty() || std::find((*found)->tags.begin(), (*found)->tags.end(),
                                                       req.tag()) != (*found)->tags.end();
          if ((req.status() == v1::DEVICE_STATUS_UNSPECIFIED || s.status() == req.status()) &&
              tagged) {
            summary = std::move(s);
            judged = **found;
            judged.latest_attestation.clear();
          }
        }
      }
      if (!summary) continue;
      v1::ExportRecord rec;
      *rec.mutable_device() = *summary;
      rec.set_sequence(row.sequence);
      *rec.mutable_issued_at() = FromMillis(row.issued_at_ms);
      *rec.mutable_received_at() = FromMillis(row.received_at_ms);
      rec.set_status(row.status);
      for (const auto& c : row.failing_checks) rec.add_failing_checks(c);
      v1::Attestation att;
      if (att.ParseFromString(row.envelope.attestation())) {
        DeviceRecord scratch = judged;
        JudgeDevice(*snapshot, now, &att, &scratch);
        *rec.mutable_checks() = std::move(*att.mutable_checks());
        rec.set_policy_version(scratch.policy_version);
      }
      rec.set_digest(row.digest);
      rec.set_key_id(row.envelope.key_id());
      rec.set_signed_attestation(row.envelope.SerializeAsString());
      if (!emit(rec)) return Status::Ok();
    }
    if (rows->size() < kPage) return Status::Ok();
  }
}

Result<v1::DeviceActionResponse> Fleet::SetDeviceTags(const v1::SetDeviceTagsRequest& req,
                                                      const std::string& actor) {
  if (req.device_id().empty()) return Status::InvalidArgument("device_id is required");
  if (req.tags_size() > 32) return Status::InvalidArgument("tags: at most 32");
  std::vector<std::string> tags;
  for (const auto& t : req.tags()) {
    if (!store_sql::IsValidTag(t)) {
      return Status::InvalidArgument("tag '" + t + "': expected 1..64 of A-Z a-z 0-9 . _ : = -");
    }
    tags.push_back(t);
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  std::string detail;
  for (const auto& t : tags) detail += (detail.empty() ? "" : ",") + t;
  AuditRecord audit{clock_.NowMillis(), actor, "device.tags", req.device_id(), detail, true};
  if (Status s = store_.SetDeviceTags(req.device_id(), tags, audit); !s.ok()) return s;
  // Tags choose overrides and exceptions: judge the device's evidence again at once.
  auto judged = ReevaluateDevice(store_, *policy_.Get(), clock_.NowMillis(), req.device_id());
  if (!judged.ok()) return judged.status();
  return Summarize(req.device_id());
}

v1::ServerStatsResponse Fleet::Stats() const {
  v1::ServerStatsResponse resp;
  for (const auto& [name, value] : counters_.Snapshot()) {
    auto* c = resp.add_counters();
    c->set_name(name);
    c->set_value(value);
  }
  return resp;
}

}  // namespace vigil::server

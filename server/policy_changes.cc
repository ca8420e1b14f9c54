#include "server/policy_changes.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "collectors/collectors.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/store_sql.h"

namespace vigil::server {
namespace {

constexpr size_t kMaxText = 2000;
constexpr size_t kMaxSetBytes = 64 * 1024;
constexpr int64_t kMaxExceptionMs = int64_t{366} * 86400 * 1000;
constexpr v1::DeviceStatus kStatuses[] = {v1::COMPLIANT, v1::NON_COMPLIANT, v1::UNKNOWN,
                                          v1::STALE,     v1::TAMPERED,      v1::EXCEPTED,
                                          v1::PENDING,   v1::REVOKED};

Status RequireText(const std::string& field, const std::string& value) {
  if (value.empty()) return Status::InvalidArgument(field + " is required");
  if (value.size() > kMaxText) {
    return Status::InvalidArgument(field + ": at most " + std::to_string(kMaxText) + " bytes");
  }
  return Status::Ok();
}

Status OptionalText(const std::string& field, const std::string& value) {
  return value.empty() ? Status::Ok() : RequireText(field, value);
}

std::string ChangeTarget(uint64_t id) { return "policy change " + std::to_string(id); }
std::string ExceptionTarget(uint64_t id) { return "exception " + std::to_string(id); }

std::string StateName(v1::PolicyChangeState s) { return v1::PolicyChangeState_Name(s); }

std::string Scope(const v1::PolicyException& e) {
  return e.device_id().empty() ? "tag " + e.tag() : "device " + e.device_id();
}

void AddCounts(const std::map<v1::DeviceStatus, uint64_t>& by,
               google::protobuf::RepeatedPtrField<v1::StatusCount>* out) {
  for (v1::DeviceStatus s : kStatuses) {
    auto* c = out->Add();
    c->set_status(s);
    auto it = by.find(s);
    c->set_count(it == by.end() ? 0 : it->second);
  }
}

// Per-check tallies of one side of a comparison.
struct CheckTally {
  uint64_t failing = 0;
  uint64_t excepted = 0;
};

void TallyChecks(const v1::Attestation& att, std::map<std::string, CheckTally>* by_check) {
  for (const auto& c : att.checks()) {
    if (c.status() == v1::FAIL || c.status() == v1::ERROR) ++(*by_check)[c.check()].failing;
    if (c.status() == v1::CHECK_EXCEPTED) ++(*by_check)[c.check()].excepted;
  }
}

}  // namespace

Result<std::shared_ptr<const PolicySnapshot>> PolicyChanges::Bootstrap(Store& store,
                                                                       const Clock& clock,
                                                                       const v1::PolicySet& initial,
                                                                       const std::string& actor) {
  auto set = collectors::NormalizePolicySet(initial);
  if (!set.ok()) return set.status();
  const std::string set_version = collectors::PolicySetVersion(*set);
  auto current = store.CurrentPolicyVersion();
  if (!current.ok()) return current.status();
  if (!current->has_value()) {
    const int64_t now = clock.NowMillis();
    v1::PolicyChange change;
    change.set_kind(v1::INITIAL);
    change.set_state(v1::APPROVED);
    *change.mutable_policy_set() = *set;
    change.set_set_version(set_version);
    change.set_reason("the first version, from the server's start-up policy");
    change.set_rollback_plan("propose a change");
    change.set_proposed_by(actor);
    *change.mutable_proposed_at() = FromMillis(now);
    change.set_decided_by(actor);
    *change.mutable_decided_at() = FromMillis(now);
    change.set_decision_reason("the first version needs no approval");
    auto id = store.InsertPolicyChange(
        change, {now, actor, "policy.propose", "policy", "initial version " + set_version, true});
    if (!id.ok()) return id.status();
    change.set_id(*id);
    PolicyVersionRecord rec{1, *id, set_version, *set, now, actor};
    v1::PolicyChange applied = change;
    applied.set_state(v1::APPLIED);
    applied.set_applied_by(actor);
    *applied.mutable_applied_at() = FromMillis(now);
    applied.set_version(1);
    Status s = store.ApplyPolicyVersion(
        rec, applied, v1::APPROVED,
        {now, actor, "policy.apply", ChangeTarget(*id), "version 1 (" + set_version + ")", true});
    if (s.code() == Status::Code::kFailedPrecondition) {
      // Another replica installed version 1 first; this request is moot.
      change.set_state(v1::REJECTED);
      change.set_decision_reason("another server installed the first version first");
      (void)store.UpdatePolicyChange(
          change, v1::APPROVED,
          {now, actor, "policy.reject", ChangeTarget(*id), change.decision_reason(), true});
    } else if (!s.ok()) {
      return s;
    } else {
      spdlog::info("policy version 1 installed ({})", set_version);
    }
  } else if ((*current)->set_version != set_version) {
    spdlog::warn(
        "the start-up policy ({}) differs from version {} in force ({}); version {} stays. "
        "Change the policy with vigilctl policy propose (docs/policy.md)",
        set_version, (*current)->number, (*current)->set_version, (*current)->number);
  }
  return LoadPolicySnapshot(store);
}

Result<v1::PolicyChange> PolicyChanges::LoadChange(uint64_t id) {
  if (id == 0) return Status::InvalidArgument("change_id is required");
  auto found = store_.GetPolicyChange(id);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no policy change " + std::to_string(id));
  return std::move(**found);
}

Result<v1::PolicyException> PolicyChanges::LoadException(uint64_t id) {
  if (id == 0) return Status::InvalidArgument("exception_id is required");
  auto found = store_.GetException(id);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no exception " + std::to_string(id));
  return std::move(**found);
}

Result<ReevaluationResult> PolicyChanges::Refresh() {
  auto changed = policy_.Refresh(store_);
  if (!changed.ok()) return changed.status();
  // A report prepared under the old snapshot can commit after this sweep: the next tick sweeps
  // again. A failed sweep is retried by every tick until one succeeds.
  sweep_needed_ = true;
  auto result = ReevaluateFleet(store_, *policy_.Get(), clock_.NowMillis());
  if (result.ok()) sweeps_pending_ = 1;
  return result;
}

Result<v1::ComplianceSnapshot> PolicyChanges::Snapshot() {
  const int64_t now = clock_.NowMillis();
  auto snapshot = policy_.Get();
  v1::ComplianceSnapshot out;
  *out.mutable_at() = FromMillis(now);
  auto counts = store_.CountByStatus(now - snapshot->CheckinWindowMs());
  if (!counts.ok()) return counts.status();
  std::map<v1::DeviceStatus, uint64_t> by;
  uint64_t total = 0;
  for (const auto& [status, n] : *counts) {
    by[status] += n;
    total += n;
  }
  out.set_total(total);
  AddCounts(by, out.mutable_by_status());
  // Failing checks from the device rows; excepted ones from the evidence of the devices that
  // exceptions cover (few).
  std::map<std::string, CheckTally> by_check;
  DeviceFilter f;
  for (;;) {
    auto page = store_.ListDevices(f);
    if (!page.ok()) return page.status();
    for (const auto& d : *page) {
      if (d.revoked_at_ms != 0 || d.last_seen_ms == 0) continue;
      for (const auto& c : d.failing_checks) ++by_check[c].failing;
      if (d.policy_version.find("/x") == std::string::npos) continue;
      auto full = store_.GetDevice(d.id);
      if (!full.ok()) return full.status();
      v1::Attestation att;
      if (!full->has_value() || !att.ParseFromString((*full)->latest_attestation)) continue;
      for (const auto& c : att.checks()) {
        if (c.status() == v1::CHECK_EXCEPTED) ++by_check[c.check()].excepted;
      }
    }
    if (page->size() < f.limit) break;
    f.after_id = page->back().id;
  }
  for (const auto& [check, t] : by_check) {
    auto* c = out.add_by_check();
    c->set_check(check);
    c->set_failing(t.failing);
    c->set_excepted(t.excepted);
  }
  return out;
}

Result<v1::PolicyVersionInfo> PolicyChanges::GetPolicy(const v1::GetPolicyRequest& req) {
  uint64_t number = req.version() ? req.version() : policy_.Get()->version().number;
  auto found = store_.GetPolicyVersion(number);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no policy version " + std::to_string(number));
  const PolicyVersionRecord& v = **found;
  v1::PolicyVersionInfo out;
  out.set_version(v.number);
  out.set_set_version(v.set_version);
  *out.mutable_policy_set() = v.set;
  out.set_change_id(v.change_id);
  *out.mutable_applied_at() = FromMillis(v.applied_at_ms);
  out.set_applied_by(v.applied_by);
  return out;
}

Result<v1::DevicePolicyResponse> PolicyChanges::GetDevicePolicy(
    const v1::GetDevicePolicyRequest& req) {
  if (req.device_id().empty()) return Status::InvalidArgument("device_id is required");
  auto found = store_.GetDevice(req.device_id());
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no device " + req.device_id());
  const DeviceRecord& d = **found;
  auto snapshot = policy_.Get();
  auto resolved = snapshot->Resolve(d.platform.os(), d.tags);
  v1::DevicePolicyResponse out;
  out.set_device_id(d.id);
  out.set_version(snapshot->version().number);
  *out.mutable_policy() = resolved->policy;
  for (const auto& name : resolved->applied) out.add_applied_overrides(name);
  for (const auto& [path, name] : resolved->origins) {
    auto* o = out.add_origins();
    o->set_path(path);
    o->set_override(name);
  }
  if (!resolved->status.ok()) out.set_error(resolved->status.message());
  for (const auto* e : snapshot->ExceptionsFor(d.id, d.tags, clock_.NowMillis())) {
    *out.add_exceptions() = *e;
  }
  out.set_os(d.platform.os());
  for (const auto& t : d.tags) out.add_tags(t);
  return out;
}

Result<v1::PolicyChange> PolicyChanges::Propose(const v1::ProposePolicyChangeRequest& req,
                                                const std::string& actor) {
  if (Status s = RequireText("reason", req.reason()); !s.ok()) return s;
  if (Status s = RequireText("rollback_plan", req.rollback_plan()); !s.ok()) return s;
  if (!req.has_policy_set()) return Status::InvalidArgument("policy_set is required");
  if (req.policy_set().ByteSizeLong() > kMaxSetBytes) {
    return Status::InvalidArgument("policy_set: larger than " +
                                   std::to_string(kMaxSetBytes / 1024) + " KiB");
  }
  if (req.policy_set().description().size() > kMaxText) {
    return Status::InvalidArgument("policy_set.description: at most " + std::to_string(kMaxText) +
                                   " bytes");
  }
  auto set = collectors::NormalizePolicySet(req.policy_set());
  if (!set.ok()) return Status::InvalidArgument("policy_set: " + set.status().message());
  // The base is the version in force in the database, not what this replica last saw.
  if (auto r = policy_.Refresh(store_); !r.ok()) return r.status();
  auto snapshot = policy_.Get();
  const std::string set_version = collectors::PolicySetVersion(*set);
  // The whole canonical set, not its short digest, decides that nothing would change.
  if (set->SerializeAsString() == snapshot->version().set.SerializeAsString()) {
    return Status::FailedPrecondition("the proposed set is version " +
                                      std::to_string(snapshot->version().number) +
                                      ", the one in force: nothing would change");
  }
  const int64_t now = clock_.NowMillis();
  v1::PolicyChange change;
  change.set_kind(v1::CHANGE);
  change.set_state(v1::PROPOSED);
  *change.mutable_policy_set() = *set;
  change.set_set_version(set_version);
  change.set_base_version(snapshot->version().number);
  change.set_reason(req.reason());
  change.set_rollback_plan(req.rollback_plan());
  change.set_proposed_by(actor);
  *change.mutable_proposed_at() = FromMillis(now);
  for (auto& line : collectors::DiffPolicySets(snapshot->version().set, *set)) {
    change.add_diff(std::move(line));
  }
  auto id = store_.InsertPolicyChange(
      change, {now, actor, "policy.propose", "policy",
               set_version + " on version " + std::to_string(change.base_version()) + ": " +
                   Printable(req.reason(), 512),
               true});
  if (!id.ok()) return id.status();
  change.set_id(*id);
  counters_.Inc("policy.proposed");
  return change;
}

Result<v1::PolicyImpact> PolicyChanges::Preview(const v1::PolicyChangeRequest& req) {
  auto change = LoadChange(req.change_id());
  if (!change.ok()) return change.status();
  // A preview reads every device's evidence: one at a time per server.
  std::unique_lock<std::mutex> one(scan_mu_, std::try_to_lock);
  if (!one.owns_lock()) {
    return Status::ResourceExhausted("another preview or review is running; retry shortly");
  }
  const uint32_t limit = req.device_limit() ? std::min<uint32_t>(req.device_limit(), 10000) : 100;
  const int64_t now = clock_.NowMillis();
  auto current = policy_.Get();
  PolicyVersionRecord proposed_version;
  proposed_version.set = change->policy_set();
  proposed_version.set_version = change->set_version();
  const PolicySnapshot proposed(std::move(proposed_version), current->active_exceptions());
  const int64_t stale_now = now - current->CheckinWindowMs();
  const int64_t stale_then = now - proposed.CheckinWindowMs();

  v1::PolicyImpact out;
  out.set_change_id(change->id());
  out.set_base_version(change->base_version());
  out.set_current_version(current->version().number);
  std::map<v1::DeviceStatus, uint64_t> before, after;
  std::map<std::string, CheckTally> checks_before, checks_after;
  std::map<std::string, std::pair<uint64_t, uint64_t>> moved;  // newly failing, newly passing
  DeviceFilter f;
  for (;;) {
    auto page = store_.ListDevices(f);
    if (!page.ok()) return page.status();
    for (const auto& lean : *page) {
      out.set_devices(out.devices() + 1);
      const v1::DeviceStatus was = EffectiveStatusOf(lean, stale_now);
      ++before[was];
      if (lean.revoked_at_ms != 0 || lean.last_seen_ms == 0) {
        ++after[EffectiveStatusOf(lean, stale_then)];
        continue;
      }
      auto full = store_.GetDevice(lean.id);
      if (!full.ok()) return full.status();
      if (!full->has_value()) {  // gone since the listing: counted alike on both sides
        ++after[EffectiveStatusOf(lean, stale_then)];
        continue;
      }
      DeviceRecord d = std::move(**full);
      v1::Attestation att_now, att_then;
      if (!att_now.ParseFromString(d.latest_attestation)) {
        ++after[EffectiveStatusOf(lean, stale_then)];
        continue;
      }
      att_then = att_now;
      DeviceRecord judged = d;
      JudgeDevice(proposed, now, &att_then, &judged);
      const v1::DeviceStatus will = EffectiveStatusOf(judged, stale_then);
      ++after[will];
      TallyChecks(att_now, &checks_before);
      TallyChecks(att_then, &checks_after);
      std::set<std::string> failing_now(d.failing_checks.begin(), d.failing_checks.end());
      std::set<std::string> failing_then(judged.failing_checks.begin(),
                                         judged.failing_checks.end());
      for (const auto& c : failing_then) {
        if (!failing_now.count(c)) ++moved[c].first;
      }
      for (const auto& c : failing_now) {
        if (!failing_then.count(c)) ++moved[c].second;
      }
      if (was == will) continue;
      out.set_changed(out.changed() + 1);
      if (static_cast<uint32_t>(out.devices_changed_size()) >= limit) continue;
      auto* di = out.add_devices_changed();
      di->set_device_id(d.id);
      di->set_hostname(d.hostname);
      di->set_before(was);
      di->set_after(will);
      for (const auto& c : d.failing_checks) di->add_failing_before(c);
      for (const auto& c : judged.failing_checks) di->add_failing_after(c);
    }
    if (page->size() < f.limit) break;
    f.after_id = page->back().id;
  }
  AddCounts(before, out.mutable_before());
  AddCounts(after, out.mutable_after());
  std::set<std::string> names;
  for (const auto& [c, _] : checks_before) names.insert(c);
  for (const auto& [c, _] : checks_after) names.insert(c);
  for (const auto& name : names) {
    auto* ci = out.add_checks();
    ci->set_check(name);
    ci->set_failing_before(checks_before[name].failing);
    ci->set_failing_after(checks_after[name].failing);
    ci->set_newly_failing(moved[name].first);
    ci->set_newly_passing(moved[name].second);
  }
  *out.mutable_diff() = change->diff();
  return out;
}

Result<v1::PolicyChange> PolicyChanges::Approve(const v1::PolicyDecisionRequest& req,
                                                const std::string& actor) {
  if (Status s = OptionalText("reason", req.reason()); !s.ok()) return s;
  auto change = LoadChange(req.change_id());
  if (!change.ok()) return change.status();
  const int64_t now = clock_.NowMillis();
  if (change->state() != v1::PROPOSED) {
    return Status::FailedPrecondition("change " + std::to_string(change->id()) + " is " +
                                      StateName(change->state()) +
                                      "; only a PROPOSED change can be approved");
  }
  if (PersonOf(actor) == PersonOf(change->proposed_by())) {
    // Refused, and on the record: the change policy needs a second person.
    (void)store_.AppendAudit({now, actor, "policy.approve", ChangeTarget(change->id()),
                              "refused: the proposer may not approve their own change", false});
    counters_.Inc("policy.approve.refused.self");
    return Status::PermissionDenied("change " + std::to_string(change->id()) + " was proposed by " +
                                    change->proposed_by() +
                                    "; it must be approved by someone else");
  }
  if (auto r = policy_.Refresh(store_); !r.ok()) return r.status();
  const uint64_t current = policy_.Get()->version().number;
  if (change->base_version() != current) {
    return Status::FailedPrecondition(
        "change " + std::to_string(change->id()) + " was proposed on version " +
        std::to_string(change->base_version()) + " but version " + std::to_string(current) +
        " is in force; its preview no longer holds: propose it again");
  }
  change->set_state(v1::APPROVED);
  change->set_decided_by(actor);
  *change->mutable_decided_at() = FromMillis(now);
  change->set_decision_reason(req.reason());
  if (Status s =
          store_.UpdatePolicyChange(*change, v1::PROPOSED,
                                    {now, actor, "policy.approve", ChangeTarget(change->id()),
                                     Printable(req.reason(), 512), true});
      !s.ok()) {
    return s;
  }
  return std::move(change).value();
}

Result<v1::PolicyChange> PolicyChanges::Reject(const v1::PolicyDecisionRequest& req,
                                               const std::string& actor) {
  if (Status s = RequireText("reason", req.reason()); !s.ok()) return s;
  auto change = LoadChange(req.change_id());
  if (!change.ok()) return change.status();
  const v1::PolicyChangeState from = change->state();
  if (from != v1::PROPOSED && from != v1::APPROVED) {
    return Status::FailedPrecondition("change " + std::to_string(change->id()) + " is " +
                                      StateName(from) +
                                      "; only a PROPOSED or APPROVED change can be rejected");
  }
  const int64_t now = clock_.NowMillis();
  change->set_state(v1::REJECTED);
  change->set_decided_by(actor);
  *change->mutable_decided_at() = FromMillis(now);
  change->set_decision_reason(req.reason());
  if (Status s = store_.UpdatePolicyChange(*change, from,
                                           {now, actor, "policy.reject", ChangeTarget(change->id()),
                                            Printable(req.reason(), 512), true});
      !s.ok()) {
    return s;
  }
  return std::move(change).value();
}

Result<v1::PolicyChange> PolicyChanges::Apply(const v1::PolicyChangeRequest& req,
                                              const std::string& actor) {
  auto change = LoadChange(req.change_id());
  if (!change.ok()) return change.status();
  if (change->state() != v1::APPROVED) {
    return Status::FailedPrecondition("change " + std::to_string(change->id()) + " is " +
                                      StateName(change->state()) +
                                      "; only an APPROVED change can be applied");
  }
  return ApplyApproved(std::move(change).value(), actor);
}

Result<v1::PolicyChange> PolicyChanges::ApplyApproved(v1::PolicyChange change,
                                                      const std::string& actor) {
  // Versions applied by another replica count: refresh before comparing.
  if (auto r = policy_.Refresh(store_); !r.ok()) return r.status();
  const uint64_t current = policy_.Get()->version().number;
  if (change.base_version() != current) {
    return Status::FailedPrecondition(
        "change " + std::to_string(change.id()) + " was proposed on version " +
        std::to_string(change.base_version()) + " but version " + std::to_string(current) +
        " is in force: propose it again (its preview and approval were for the older version)");
  }
  auto before = Snapshot();
  if (!before.ok()) return before.status();
  const int64_t now = clock_.NowMillis();
  PolicyVersionRecord rec{current + 1,         change.id(), change.set_version(),
                          change.policy_set(), now,         actor};
  change.set_state(v1::APPLIED);
  change.set_applied_by(actor);
  *change.mutable_applied_at() = FromMillis(now);
  change.set_version(rec.number);
  *change.mutable_before() = *before;
  if (Status s = store_.ApplyPolicyVersion(
          rec, change, v1::APPROVED,
          {now, actor, "policy.apply", ChangeTarget(change.id()),
           "version " + std::to_string(rec.number) + " (" + rec.set_version + ")", true});
      !s.ok()) {
    return s;
  }
  counters_.Inc("policy.applied");
  spdlog::info("policy version {} applied by {} (change {})", rec.number, actor, change.id());
  // The version is in force from here. Re-judging the fleet and the snapshots are its record:
  // a failure now is reported, but the change stays applied.
  auto judged = Refresh();
  if (!judged.ok()) return judged.status();
  auto after = Snapshot();
  if (!after.ok()) return after.status();
  *change.mutable_after() = *after;
  change.set_devices_changed(judged->status_changed);
  if (Status s = store_.UpdatePolicyChange(
          change, v1::APPLIED,
          {clock_.NowMillis(), actor, "policy.reevaluate", ChangeTarget(change.id()),
           "version " + std::to_string(rec.number) + ": " + std::to_string(judged->judged) +
               " devices judged again, " + std::to_string(judged->status_changed) +
               " changed status",
           true});
      !s.ok()) {
    return s;
  }
  return change;
}

Result<v1::PolicyChange> PolicyChanges::Rollback(const v1::RollbackPolicyRequest& req,
                                                 const std::string& actor) {
  if (Status s = RequireText("reason", req.reason()); !s.ok()) return s;
  if (req.to_version() == 0) return Status::InvalidArgument("to_version is required");
  if (auto r = policy_.Refresh(store_); !r.ok()) return r.status();
  auto current = policy_.Get();
  if (req.to_version() == current->version().number) {
    return Status::FailedPrecondition("version " + std::to_string(req.to_version()) +
                                      " is already in force");
  }
  auto target = store_.GetPolicyVersion(req.to_version());
  if (!target.ok()) return target.status();
  if (!target->has_value()) {
    return Status::NotFound("no policy version " + std::to_string(req.to_version()));
  }
  // The change that made the version in force: undoing it is what its approved rollback plan
  // covers, so that rollback takes one admin. Any other version is a new choice: it goes
  // through approval like any change.
  auto undone = store_.GetPolicyChange(current->version().change_id);
  if (!undone.ok()) return undone.status();
  const bool planned = undone->has_value() && (*undone)->kind() != v1::INITIAL &&
                       (*undone)->base_version() == req.to_version();
  const int64_t now = clock_.NowMillis();
  v1::PolicyChange change;
  change.set_kind(v1::ROLLBACK);
  change.set_state(planned ? v1::APPROVED : v1::PROPOSED);
  *change.mutable_policy_set() = (*target)->set;
  change.set_set_version((*target)->set_version);
  change.set_base_version(current->version().number);
  change.set_rollback_to(req.to_version());
  change.set_reason(req.reason());
  change.set_rollback_plan("vigilctl policy rollback --to " +
                           std::to_string(current->version().number));
  change.set_proposed_by(actor);
  *change.mutable_proposed_at() = FromMillis(now);
  if (planned) {
    const v1::PolicyChange& u = **undone;
    change.set_decided_by(u.decided_by());
    *change.mutable_decided_at() = FromMillis(now);
    change.set_decision_reason("the rollback plan of change " + std::to_string(u.id()) +
                               ", approved by " + u.decided_by() + ": " + u.rollback_plan());
  }
  for (auto& line : collectors::DiffPolicySets(current->version().set, (*target)->set)) {
    change.add_diff(std::move(line));
  }
  auto id = store_.InsertPolicyChange(
      change,
      {now, actor, "policy.rollback", "policy",
       "to version " + std::to_string(req.to_version()) + " from version " +
           std::to_string(current->version().number) +
           (planned ? " (the undone change's approved rollback plan): " : " (needs approval): ") +
           Printable(req.reason(), 512),
       true});
  if (!id.ok()) return id.status();
  change.set_id(*id);
  if (!planned) return change;
  return ApplyApproved(std::move(change), actor);
}

Result<v1::PolicyReview> PolicyChanges::Review(const v1::PolicyChangeRequest& req) {
  auto change = LoadChange(req.change_id());
  if (!change.ok()) return change.status();
  if (change->state() != v1::APPLIED) {
    return Status::FailedPrecondition("change " + std::to_string(change->id()) + " is " +
                                      StateName(change->state()) +
                                      "; only an APPLIED change can be reviewed");
  }
  std::unique_lock<std::mutex> one(scan_mu_, std::try_to_lock);
  if (!one.owns_lock()) {
    return Status::ResourceExhausted("another preview or review is running; retry shortly");
  }
  auto now = Snapshot();
  if (!now.ok()) return now.status();
  v1::PolicyReview out;
  *out.mutable_before() = change->before();
  *out.mutable_after() = change->after();
  *out.mutable_now() = *now;
  out.set_current_version(policy_.Get()->version().number);
  *out.mutable_change() = std::move(change).value();
  return out;
}

Result<v1::PolicyChange> PolicyChanges::GetChange(const v1::PolicyChangeRequest& req) {
  return LoadChange(req.change_id());
}

Result<v1::ListPolicyChangesResponse> PolicyChanges::ListChanges(
    const v1::ListPolicyChangesRequest& req) {
  // A change holds its set (at most 64 KiB), diff and snapshots: 100 stay well inside a reply.
  const uint32_t limit = req.limit() ? std::min<uint32_t>(req.limit(), 100) : 100;
  auto changes = store_.ListPolicyChanges(req.after_id(), limit);
  if (!changes.ok()) return changes.status();
  v1::ListPolicyChangesResponse out;
  for (auto& c : *changes) *out.add_changes() = std::move(c);
  out.set_current_version(policy_.Get()->version().number);
  return out;
}

Result<v1::DiffPolicyVersionsResponse> PolicyChanges::Diff(
    const v1::DiffPolicyVersionsRequest& req) {
  if (req.from_version() == 0) return Status::InvalidArgument("from_version is required");
  const uint64_t to = req.to_version() ? req.to_version() : policy_.Get()->version().number;
  auto a = store_.GetPolicyVersion(req.from_version());
  if (!a.ok()) return a.status();
  if (!a->has_value()) {
    return Status::NotFound("no policy version " + std::to_string(req.from_version()));
  }
  auto b = store_.GetPolicyVersion(to);
  if (!b.ok()) return b.status();
  if (!b->has_value()) return Status::NotFound("no policy version " + std::to_string(to));
  v1::DiffPolicyVersionsResponse out;
  for (auto& line : collectors::DiffPolicySets((*a)->set, (*b)->set)) {
    out.add_lines(std::move(line));
  }
  return out;
}

// ---- exceptions ----

Result<v1::PolicyException> PolicyChanges::RequestException(const v1::RequestExceptionRequest& req,
                                                            const std::string& actor) {
  if (req.device_id().empty() == req.tag().empty()) {
    return Status::InvalidArgument("exactly one of device_id and tag is required");
  }
  if (!req.tag().empty() && !store_sql::IsValidTag(req.tag())) {
    return Status::InvalidArgument("tag: '" + Printable(req.tag()) + "' is not a tag");
  }
  if (!req.device_id().empty()) {
    auto d = store_.GetDevice(req.device_id());
    if (!d.ok()) return d.status();
    if (!d->has_value()) return Status::NotFound("no device " + Printable(req.device_id()));
  }
  const std::vector<std::string> known = {collectors::kScreenLock, collectors::kPasswordPolicy,
                                          collectors::kUsbStorage};
  if (std::find(known.begin(), known.end(), req.check()) == known.end()) {
    return Status::InvalidArgument("check: '" + Printable(req.check()) +
                                   "' is not a check (screen_lock, password_policy, usb_storage)");
  }
  if (Status s = RequireText("reason", req.reason()); !s.ok()) return s;
  const int64_t now = clock_.NowMillis();
  if (!req.has_expires_at()) return Status::InvalidArgument("expires_at is required");
  const int64_t expires = ToMillis(req.expires_at());
  if (expires <= now) return Status::InvalidArgument("expires_at: must be in the future");
  if (expires > now + kMaxExceptionMs) {
    return Status::InvalidArgument("expires_at: at most 366 days ahead; renew it instead");
  }
  v1::PolicyException e;
  e.set_state(v1::EXCEPTION_REQUESTED);
  e.set_device_id(req.device_id());
  e.set_tag(req.tag());
  e.set_check(req.check());
  e.set_reason(req.reason());
  *e.mutable_expires_at() = FromMillis(expires);
  e.set_requested_by(actor);
  *e.mutable_requested_at() = FromMillis(now);
  auto id = store_.InsertException(
      e, {now, actor, "exception.request", Scope(e),
          req.check() + " until " + UtcTime(expires) + ": " + Printable(req.reason(), 512), true});
  if (!id.ok()) return id.status();
  e.set_id(*id);
  return e;
}

Result<v1::PolicyException> PolicyChanges::ApproveException(const v1::ExceptionDecisionRequest& req,
                                                            const std::string& actor) {
  if (Status s = OptionalText("reason", req.reason()); !s.ok()) return s;
  auto e = LoadException(req.exception_id());
  if (!e.ok()) return e.status();
  const int64_t now = clock_.NowMillis();
  if (e->state() != v1::EXCEPTION_REQUESTED) {
    return Status::FailedPrecondition("exception " + std::to_string(e->id()) + " is " +
                                      v1::ExceptionState_Name(e->state()) +
                                      "; only a requested exception can be approved");
  }
  if (PersonOf(actor) == PersonOf(e->requested_by())) {
    (void)store_.AppendAudit({now, actor, "exception.approve", ExceptionTarget(e->id()),
                              "refused: the requester may not approve their own exception", false});
    counters_.Inc("exception.approve.refused.self");
    return Status::PermissionDenied("exception " + std::to_string(e->id()) + " was requested by " +
                                    e->requested_by() + "; it must be approved by someone else");
  }
  if (ToMillis(e->expires_at()) <= now) {
    return Status::FailedPrecondition("exception " + std::to_string(e->id()) +
                                      " has already passed its expiry; request a new one");
  }
  e->set_state(v1::EXCEPTION_ACTIVE);
  e->set_decided_by(actor);
  *e->mutable_decided_at() = FromMillis(now);
  e->set_decision_reason(req.reason());
  if (Status s = store_.UpdateException(*e, v1::EXCEPTION_REQUESTED,
                                        {now, actor, "exception.approve", ExceptionTarget(e->id()),
                                         Scope(*e) + ", " + e->check(), true},
                                        nullptr);
      !s.ok()) {
    return s;
  }
  if (auto r = Refresh(); !r.ok()) return r.status();
  return std::move(e).value();
}

Result<v1::PolicyException> PolicyChanges::RejectException(const v1::ExceptionDecisionRequest& req,
                                                           const std::string& actor) {
  if (Status s = RequireText("reason", req.reason()); !s.ok()) return s;
  auto e = LoadException(req.exception_id());
  if (!e.ok()) return e.status();
  if (e->state() != v1::EXCEPTION_REQUESTED) {
    return Status::FailedPrecondition("exception " + std::to_string(e->id()) + " is " +
                                      v1::ExceptionState_Name(e->state()) +
                                      "; only a requested exception can be rejected");
  }
  const int64_t now = clock_.NowMillis();
  e->set_state(v1::EXCEPTION_REJECTED);
  e->set_decided_by(actor);
  *e->mutable_decided_at() = FromMillis(now);
  e->set_decision_reason(req.reason());
  if (Status s = store_.UpdateException(*e, v1::EXCEPTION_REQUESTED,
                                        {now, actor, "exception.reject", ExceptionTarget(e->id()),
                                         Printable(req.reason(), 512), true},
                                        nullptr);
      !s.ok()) {
    return s;
  }
  return std::move(e).value();
}

Result<v1::PolicyException> PolicyChanges::RevokeException(const v1::ExceptionDecisionRequest& req,
                                                           const std::string& actor) {
  if (Status s = RequireText("reason", req.reason()); !s.ok()) return s;
  auto e = LoadException(req.exception_id());
  if (!e.ok()) return e.status();
  const v1::ExceptionState from = e->state();
  if (from != v1::EXCEPTION_REQUESTED && from != v1::EXCEPTION_ACTIVE) {
    return Status::FailedPrecondition("exception " + std::to_string(e->id()) + " is " +
                                      v1::ExceptionState_Name(from) +
                                      "; only a requested or active exception can be revoked");
  }
  const int64_t now = clock_.NowMillis();
  e->set_state(v1::EXCEPTION_REVOKED);
  e->set_ended_by(actor);
  *e->mutable_ended_at() = FromMillis(now);
  e->set_end_reason(req.reason());
  if (Status s = store_.UpdateException(*e, from,
                                        {now, actor, "exception.revoke", ExceptionTarget(e->id()),
                                         Printable(req.reason(), 512), true},
                                        nullptr);
      !s.ok()) {
    return s;
  }
  if (auto r = Refresh(); !r.ok()) return r.status();
  return std::move(e).value();
}

Result<v1::ListExceptionsResponse> PolicyChanges::ListExceptions(
    const v1::ListExceptionsRequest& req) {
  std::vector<std::string> tags;
  if (!req.device_id().empty()) {
    auto d = store_.GetDevice(req.device_id());
    if (!d.ok()) return d.status();
    if (!d->has_value()) return Status::NotFound("no device " + Printable(req.device_id()));
    tags = (*d)->tags;
  }
  v1::ListExceptionsResponse out;
  const uint32_t limit = req.limit() ? std::min<uint32_t>(req.limit(), 1000) : 1000;
  uint64_t after = req.after_id();
  // Pages of the store until `limit` match (a device filter can skip many), at most 20 pages a
  // call: the caller continues from next_after_id.
  for (int pages = 0; pages < 20; ++pages) {
    auto page = store_.ListExceptions(req.state(), after, 1000);
    if (!page.ok()) return page.status();
    for (auto& e : *page) {
      after = e.id();
      bool covers =
          req.device_id().empty() || e.device_id() == req.device_id() ||
          (!e.tag().empty() && std::find(tags.begin(), tags.end(), e.tag()) != tags.end());
      if (covers) *out.add_exceptions() = std::move(e);
      if (static_cast<uint32_t>(out.exceptions_size()) == limit) {
        out.set_next_after_id(after);
        return out;
      }
    }
    if (page->size() < 1000) return out;
  }
  out.set_next_after_id(after);
  return out;
}

Result<uint64_t> PolicyChanges::Tick() {
  const int64_t now = clock_.NowMillis();
  uint64_t expired = 0;
  auto snapshot = policy_.Get();
  for (const auto& active : snapshot->active_exceptions()) {
    if (ToMillis(active.expires_at()) > now) continue;
    v1::PolicyException e = active;
    e.set_state(v1::EXCEPTION_EXPIRED);
    e.set_ended_by("server");
    *e.mutable_ended_at() = FromMillis(now);
    e.set_end_reason("expired");
    AlertRecord alert;
    alert.kind = "exception.expired";
    alert.device_id = e.device_id();
    if (!e.device_id().empty()) {
      auto d = store_.GetDevice(e.device_id());
      if (d.ok() && d->has_value()) alert.hostname = (*d)->hostname;
    }
    alert.at_ms = now;
    alert.reason = "exception " + std::to_string(e.id()) + " for " + e.check() + " on " + Scope(e) +
                   " expired (approved by " + e.decided_by() + "; " + e.reason() + ")";
    alert.failing_checks = {e.check()};
    Status s = store_.UpdateException(e, v1::EXCEPTION_ACTIVE,
                                      {now, "server", "exception.expire", ExceptionTarget(e.id()),
                                       Scope(e) + ", " + e.check(), true},
                                      &alert);
    if (s.code() == Status::Code::kFailedPrecondition) continue;  // another replica did it
    if (!s.ok()) return s;
    ++expired;
    counters_.Inc("exception.expired");
    spdlog::info("exception {} ({} on {}) expired", e.id(), e.check(), Scope(e));
  }
  auto changed = policy_.Refresh(store_);
  if (!changed.ok()) return changed.status();
  if (*changed || expired > 0) {
    sweep_needed_ = true;
    sweeps_pending_ = 2;  // now, and once more for reports prepared before the swap
  }
  if (sweep_needed_ || sweeps_pending_ > 0) {
    auto judged = ReevaluateFleet(store_, *policy_.Get(), now);
    if (!judged.ok()) return judged.status();  // sweep_needed_ stays: the next tick retries
    sweep_needed_ = false;
    if (sweeps_pending_ > 0) --sweeps_pending_;
  }
  return expired;
}

}  // namespace vigil::server

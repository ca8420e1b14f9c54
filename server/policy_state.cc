#include "server/policy_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "collectors/evaluate.h"
#include "server/aggregator.h"
#include "server/fleet.h"

namespace vigil::server {

PolicySnapshot::PolicySnapshot(PolicyVersionRecord version, std::vector<v1::PolicyException> active)
    : version_(std::move(version)), active_(std::move(active)) {
  std::sort(active_.begin(), active_.end(),
            [](const auto& a, const auto& b) { return a.id() < b.id(); });
}

int64_t PolicySnapshot::CheckinWindowMs() const {
  uint32_t s = version_.set.default_policy().checkin_window_seconds();
  return int64_t{s ? s : 3600} * 1000;
}

std::shared_ptr<const collectors::ResolvedPolicy> PolicySnapshot::Resolve(
    const std::string& os, const std::vector<std::string>& tags) const {
  // Length-prefixed: the OS comes from the device, and no spelling of it can pass for a
  // combination of tags.
  std::string key = std::to_string(os.size()) + ":" + os;
  for (const auto& t : tags) key += std::to_string(t.size()) + ":" + t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  // Resolved outside the lock: a miss does not stall the reports of other devices.
  auto resolved = std::make_shared<const collectors::ResolvedPolicy>(
      collectors::ResolvePolicy(version_.set, os, tags));
  std::lock_guard<std::mutex> lock(mu_);
  // Keys are OS and tag combinations, which are few; past the bound (odd fleets, or devices
  // inventing OS names) results are computed each time rather than evicting the real ones.
  if (cache_.size() < kMaxCachedPolicies) cache_.emplace(std::move(key), resolved);
  return resolved;
}

std::vector<const v1::PolicyException*> PolicySnapshot::ExceptionsFor(
    const std::string& device_id, const std::vector<std::string>& tags, int64_t now_ms) const {
  std::vector<const v1::PolicyException*> out;
  for (const auto& e : active_) {
    if (ToMillis(e.expires_at()) <= now_ms) continue;
    bool covers = e.device_id().empty() ? std::find(tags.begin(), tags.end(), e.tag()) != tags.end()
                                        : e.device_id() == device_id;
    if (covers) out.push_back(&e);
  }
  return out;
}

std::string PolicySnapshot::JudgedVersion(
    const collectors::ResolvedPolicy& resolved,
    const std::vector<const v1::PolicyException*>& covering) const {
  // The version number too: two versions with the same set (a rollback) are judged afresh, and
  // a short digest alone never decides that nothing changed.
  std::string v = "v" + std::to_string(version_.number) + ":" + resolved.policy.version();
  for (size_t i = 0; i < covering.size(); ++i) {
    v += (i == 0 ? "/x" : ",") + std::to_string(covering[i]->id());
  }
  return v;
}

std::string PolicySnapshot::JudgedVersion(const std::string& device_id, const std::string& os,
                                          const std::vector<std::string>& tags,
                                          int64_t now_ms) const {
  return JudgedVersion(*Resolve(os, tags), ExceptionsFor(device_id, tags, now_ms));
}

void JudgeDevice(const PolicySnapshot& snapshot, int64_t now_ms, v1::Attestation* att,
                 DeviceRecord* device) {
  JudgeDevice(snapshot, *snapshot.Resolve(device->platform.os(), device->tags), now_ms, att,
              device);
}

void JudgeDevice(const PolicySnapshot& snapshot, const collectors::ResolvedPolicy& effective,
                 int64_t now_ms, v1::Attestation* att, DeviceRecord* device) {
  if (effective.status.ok()) {
    collectors::EvaluateAll(effective.policy, att->mutable_checks());
  } else {
    // Overrides that conflict for this device: nothing can be judged, and it must show.
    for (auto& c : *att->mutable_checks()) {
      c.set_status(v1::ERROR);
      c.set_reason("the effective policy is invalid: " + effective.status.message());
    }
  }
  att->set_policy_version(effective.policy.version());
  auto exceptions = snapshot.ExceptionsFor(device->id, device->tags, now_ms);
  device->failing_checks.clear();
  std::string reason;
  bool excepted = false;
  for (auto& c : *att->mutable_checks()) {
    if (!IsValidCheckId(c.check())) {
      // Check ids come from the device; keep them to the documented shape so they can never
      // confuse storage or filters. An unknown id is already ERROR.
      c.set_check("invalid_check_id");
    }
    if (c.status() != v1::FAIL && c.status() != v1::ERROR) continue;
    auto it = std::find_if(exceptions.begin(), exceptions.end(),
                           [&](const v1::PolicyException* e) { return e->check() == c.check(); });
    if (it != exceptions.end()) {
      const v1::PolicyException& e = **it;
      c.set_reason("excepted by exception " + std::to_string(e.id()) + " (approved by " +
                   e.decided_by() + ", until " + UtcTime(ToMillis(e.expires_at())) + "); " +
                   v1::CheckStatus_Name(c.status()) + ": " + c.reason());
      c.set_status(v1::CHECK_EXCEPTED);
      excepted = true;
      continue;
    }
    device->failing_checks.push_back(c.check());
    if (!reason.empty()) reason += "; ";
    reason += c.check() + " " + v1::CheckStatus_Name(c.status()) + ": " + c.reason();
  }
  // A device that reports no checks at all proves nothing.
  if (att->checks_size() == 0) reason = "the attestation carries no checks";
  if (!reason.empty()) {
    device->status = v1::NON_COMPLIANT;
    device->status_reason = reason;
  } else if (excepted) {
    device->status = v1::EXCEPTED;
    device->status_reason = "failing checks are covered by approved exceptions";
  } else {
    device->status = v1::COMPLIANT;
    device->status_reason = "all checks pass";
  }
  device->policy_version = snapshot.JudgedVersion(effective, exceptions);
}

v1::DeviceStatus EffectiveStatusOf(const DeviceRecord& d, int64_t stale_before_ms) {
  if (d.revoked_at_ms != 0) return v1::REVOKED;
  if (d.tampered) return v1::TAMPERED;
  if (d.pending) return v1::PENDING;
  if (d.last_seen_ms == 0) return v1::UNKNOWN;
  if (d.last_seen_ms < stale_before_ms) return v1::STALE;
  return d.status;
}

std::shared_ptr<const PolicySnapshot> PolicyState::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

void PolicyState::Set(std::shared_ptr<const PolicySnapshot> snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(snapshot);
}

v1::PolicySet PolicySetOf(const v1::Policy& policy) {
  v1::PolicySet set;
  *set.mutable_default_policy() = policy;
  return set;
}

std::shared_ptr<const PolicySnapshot> UnstoredSnapshot(const v1::Policy& policy) {
  v1::PolicySet set = PolicySetOf(policy);
  auto normal = collectors::NormalizePolicySet(set);
  if (normal.ok()) set = std::move(normal).value();
  PolicyVersionRecord v;
  v.number = 1;
  v.set_version = collectors::PolicySetVersion(set);
  v.set = std::move(set);
  return std::make_shared<const PolicySnapshot>(std::move(v), std::vector<v1::PolicyException>{});
}

Result<std::shared_ptr<const PolicySnapshot>> LoadPolicySnapshot(Store& store) {
  auto current = store.CurrentPolicyVersion();
  if (!current.ok()) return current.status();
  if (!current->has_value()) return Status::NotFound("no policy version has been applied");
  std::vector<v1::PolicyException> active;
  uint64_t after = 0;
  for (;;) {
    auto page = store.ListExceptions(v1::EXCEPTION_ACTIVE, after, 1000);
    if (!page.ok()) return page.status();
    for (auto& e : *page) active.push_back(std::move(e));
    if (page->size() < 1000) break;
    after = active.back().id();
  }
  return std::make_shared<const PolicySnapshot>(std::move(**current), std::move(active));
}

Result<bool> PolicyState::Refresh(Store& store) {
  // One refresh at a time, each loading after the one before it swapped: a slow load can never
  // put an older state back over a newer one.
  std::lock_guard<std::mutex> refreshing(refresh_mu_);
  auto loaded = LoadPolicySnapshot(store);
  if (!loaded.ok()) return loaded.status();
  auto current = Get();
  auto same_exceptions = [&] {
    const auto& a = current->active_exceptions();
    const auto& b = (*loaded)->active_exceptions();
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].SerializeAsString() != b[i].SerializeAsString()) return false;
    }
    return true;
  };
  if (current && current->version().number == (*loaded)->version().number && same_exceptions()) {
    return false;
  }
  Set(std::move(loaded).value());
  return true;
}

namespace {

// Re-judges `d` (with its latest attestation) when its stored version is not the one it would
// be judged under now; false when nothing needed doing.
bool Rejudge(const PolicySnapshot& snapshot, int64_t now_ms, DeviceRecord* d,
             ReevaluationResult* result) {
  v1::Attestation att;
  if (!att.ParseFromString(d->latest_attestation)) return false;
  const v1::DeviceStatus before = d->status;
  JudgeDevice(snapshot, now_ms, &att, d);
  att.SerializeToString(&d->latest_attestation);
  if (d->status != before) ++result->status_changed;
  return true;
}

}  // namespace

Result<ReevaluationResult> ReevaluateDevice(Store& store, const PolicySnapshot& snapshot,
                                            int64_t now_ms, const std::string& device_id) {
  auto found = store.GetDevice(device_id);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return Status::NotFound("no device " + device_id);
  DeviceRecord d = std::move(**found);
  ReevaluationResult result;
  if (d.last_seen_ms == 0 ||
      d.policy_version == snapshot.JudgedVersion(d.id, d.platform.os(), d.tags, now_ms)) {
    return result;
  }
  if (!Rejudge(snapshot, now_ms, &d, &result)) return result;
  if (Status s = store.UpdateVerdicts({d}); !s.ok()) return s;
  result.judged = 1;
  return result;
}

Result<ReevaluationResult> ReevaluateFleet(Store& store, const PolicySnapshot& snapshot,
                                           int64_t now_ms) {
  DeviceFilter f;
  f.limit = 1000;
  ReevaluationResult result;
  for (;;) {
    auto page = store.ListDevices(f);
    if (!page.ok()) return page.status();
    // One transaction per page: a new policy on a large fleet is minutes of fsyncs otherwise.
    std::vector<DeviceRecord> judged;
    for (const auto& summary : *page) {
      if (summary.last_seen_ms == 0) continue;
      if (summary.policy_version ==
          snapshot.JudgedVersion(summary.id, summary.platform.os(), summary.tags, now_ms)) {
        continue;
      }
      auto full = store.GetDevice(summary.id);
      if (!full.ok()) return full.status();
      if (!full->has_value()) continue;
      DeviceRecord d = std::move(**full);
      if (Rejudge(snapshot, now_ms, &d, &result)) judged.push_back(std::move(d));
    }
    if (!judged.empty()) {
      if (Status s = store.UpdateVerdicts(judged); !s.ok()) return s;
      result.judged += judged.size();
    }
    if (page->size() < f.limit) break;
    f.after_id = page->back().id;
  }
  if (result.judged > 0) {
    spdlog::info("re-evaluated {} devices under policy version {} ({} changed status)",
                 result.judged, snapshot.version().number, result.status_changed);
  }
  return result;
}

}  // namespace vigil::server

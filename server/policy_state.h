// The policy in force on this server: the current applied version of the PolicySet and the
// active exceptions, as one immutable snapshot that readers share (PolicyState), and how a
// device's evidence is judged under it (JudgeDevice). The snapshot is swapped whole when a
// version is applied or an exception changes, here or on another replica (Refresh polls the
// store), so a report is always judged under one consistent version.
//
// Judging (docs/policy.md, "How a device is judged"):
//   1. the device's effective policy: the default plus the overrides matching its OS and tags
//      (collectors::ResolvePolicy); a conflict between overrides makes every check ERROR;
//   2. the checks evaluated under it (collectors::EvaluateAll);
//   3. a FAIL or ERROR check covered by an ACTIVE exception that has not expired by the server's
//      clock becomes EXCEPTED (device_id or one of the device's tags, and the check id);
//   4. status: NON_COMPLIANT when any check is FAIL or ERROR (or there are no checks), else
//      EXCEPTED when any is EXCEPTED, else COMPLIANT.
// The device's stored policy_version records what it was judged under: the version number, the
// effective policy's version, plus "/x" and the ids of the exceptions that covered the device. A
// device whose stored version differs from what it would be judged under now is re-judged
// (ReevaluateFleet).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "collectors/policy_set.h"
#include "common/clock.h"
#include "common/status.h"
#include "server/store.h"

namespace vigil::server {

class PolicySnapshot {
 public:
  PolicySnapshot(PolicyVersionRecord version, std::vector<v1::PolicyException> active);

  const PolicyVersionRecord& version() const { return version_; }
  // ACTIVE exceptions (some may have passed their expiry and wait for the sweep).
  const std::vector<v1::PolicyException>& active_exceptions() const { return active_; }
  // The STALE threshold: the default policy's check-in window (overrides do not change it).
  int64_t CheckinWindowMs() const;

  // The effective policy of a device with this OS and these tags (cached; thread-safe).
  std::shared_ptr<const collectors::ResolvedPolicy> Resolve(
      const std::string& os, const std::vector<std::string>& tags) const;
  // ACTIVE, unexpired exceptions covering the device, in id order.
  std::vector<const v1::PolicyException*> ExceptionsFor(const std::string& device_id,
                                                        const std::vector<std::string>& tags,
                                                        int64_t now_ms) const;
  // What a device's stored policy_version is once judged now (see the file comment): "v" and
  // the version number, ":", the effective policy's version, and "/x" with the exceptions' ids.
  std::string JudgedVersion(const std::string& device_id, const std::string& os,
                            const std::vector<std::string>& tags, int64_t now_ms) const;
  std::string JudgedVersion(const collectors::ResolvedPolicy& resolved,
                            const std::vector<const v1::PolicyException*>& covering) const;

  static constexpr size_t kMaxCachedPolicies = 4096;

 private:
  PolicyVersionRecord version_;
  std::vector<v1::PolicyException> active_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::shared_ptr<const collectors::ResolvedPolicy>> cache_;
};

// Judges `att` (the device's evidence) for `device` (id, platform and tags read from it): sets
// the checks' verdicts and the attestation's policy_version, and the device's status,
// status_reason, failing_checks (FAIL and ERROR, not excepted) and policy_version.
void JudgeDevice(const PolicySnapshot& snapshot, int64_t now_ms, v1::Attestation* att,
                 DeviceRecord* device);
// The same with the device's effective policy already resolved from `snapshot` (the ingest
// path has it at hand).
void JudgeDevice(const PolicySnapshot& snapshot, const collectors::ResolvedPolicy& effective,
                 int64_t now_ms, v1::Attestation* att, DeviceRecord* device);

// The status a device shows: REVOKED over TAMPERED over PENDING over UNKNOWN (never reported)
// over STALE (last report before stale_before_ms) over its verdict.
v1::DeviceStatus EffectiveStatusOf(const DeviceRecord& d, int64_t stale_before_ms);

class PolicyState {
 public:
  explicit PolicyState(std::shared_ptr<const PolicySnapshot> initial)
      : snapshot_(std::move(initial)) {}

  std::shared_ptr<const PolicySnapshot> Get() const;
  void Set(std::shared_ptr<const PolicySnapshot> snapshot);
  // Reads the current version and the ACTIVE exceptions from the store; swaps the snapshot when
  // either differs. Returns true when it changed.
  Result<bool> Refresh(Store& store);

 private:
  mutable std::mutex mu_;
  std::mutex refresh_mu_;  // held across a whole Refresh
  std::shared_ptr<const PolicySnapshot> snapshot_;
};

// A set holding `policy` as its default and no overrides.
v1::PolicySet PolicySetOf(const v1::Policy& policy);
// `policy` alone as version 1, not stored: for tests, benchmarks and fuzzers that ingest under a
// fixed policy without the change process.
std::shared_ptr<const PolicySnapshot> UnstoredSnapshot(const v1::Policy& policy);

// Loads the snapshot from the store (NotFound when no version was applied yet).
Result<std::shared_ptr<const PolicySnapshot>> LoadPolicySnapshot(Store& store);

struct ReevaluationResult {
  uint64_t judged = 0;          // devices re-judged and written
  uint64_t status_changed = 0;  // of those, devices whose verdict status changed
};

// Re-judges every device that has reported and whose stored policy_version differs from what
// it would be judged under now; one transaction per page of devices (Store::UpdateVerdicts,
// which skips a device that reported meanwhile: its newer verdict stands).
Result<ReevaluationResult> ReevaluateFleet(Store& store, const PolicySnapshot& snapshot,
                                           int64_t now_ms);

// The same for one device (after its tags changed, say). NotFound when there is no such device.
Result<ReevaluationResult> ReevaluateDevice(Store& store, const PolicySnapshot& snapshot,
                                            int64_t now_ms, const std::string& device_id);

}  // namespace vigil::server

// Aggregator: the server's domain logic for agents — enrollment, signature verification,
// replay detection, re-evaluation under the server's policy, and commit. Knows nothing of gRPC;
// the service layer converts. Thread-safe: per-device ordering is enforced under one mutex.
#pragma once

#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "server/store.h"
#include "vigil/v1/agent_service.pb.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::server {

// Wire codes of AttestationAck.code: the gRPC status code numbers (docs/protocol.md).
enum AckCode : int32_t {
  kAckOk = 0,
  kAckInvalidArgument = 3,
  kAckAlreadyExists = 6,  // the same attestation again: acknowledged, stored once
  kAckPermissionDenied = 7,
  kAckUnauthenticated = 16,
  kAckInternal = 13,
};

// Check ids are lower-case letters, digits and '_' (at most 64), e.g. "usb_storage".
bool IsValidCheckId(const std::string& id);

struct AggregatorOptions {
  std::string enroll_secret;  // compared in constant time; never logged
  uint32_t max_batch = 100;
  size_t max_attestation_bytes = 1u << 20;
};

class Aggregator {
 public:
  Aggregator(Store& store, const Clock& clock, v1::Policy policy, AggregatorOptions options);

  Result<v1::EnrollResponse> Enroll(const v1::EnrollRequest& request);
  Result<v1::ReportResponse> Report(const v1::ReportRequest& request);

  // Re-judges every device whose stored verdicts came from another policy version.
  Status ReevaluateFleet();

  const v1::Policy& policy() const { return policy_; }

  // Device status from the latest evidence's verdicts: FAIL or ERROR anywhere = NON_COMPLIANT.
  static void ApplyVerdicts(const v1::Policy& policy, v1::Attestation* attestation,
                            DeviceRecord* device);

 private:
  v1::AttestationAck Ingest(const v1::SignedAttestation& signed_att);
  v1::AttestationAck Reject(const std::string& device_id, int32_t code, const std::string& message,
                            bool tamper);

  Store& store_;
  const Clock& clock_;
  const v1::Policy policy_;
  const std::string policy_version_;
  const AggregatorOptions options_;
  std::mutex ingest_mu_;
};

}  // namespace vigil::server

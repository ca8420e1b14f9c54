// The agent's work, independent of how it is scheduled: collect evidence, judge it with the
// local (advisory) policy, reserve a sequence, sign, queue durably, and flush the outbox to the
// server oldest first. Transport is an interface so tests can drop or fail calls.
#pragma once

#include <memory>
#include <string>

#include "agent/outbox.h"
#include "agent/state.h"
#include "collectors/system_view.h"
#include "common/clock.h"
#include "common/status.h"
#include "vigil/v1/agent_service.pb.h"
#include "vigil/v1/config.pb.h"

namespace vigil::agent {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<v1::EnrollResponse> Enroll(const v1::EnrollRequest& req) = 0;
  virtual Result<v1::ReportResponse> Report(const v1::ReportRequest& req) = 0;
};

// gRPC over plaintext (loopback) with a per-call deadline.
std::unique_ptr<Transport> NewGrpcTransport(const std::string& server,
                                            std::chrono::seconds timeout);

// Fills defaults and checks ranges; errors name the field.
Status NormalizeConfig(v1::AgentConfig* config);

struct FlushStats {
  size_t acknowledged = 0;
  size_t rejected = 0;
  size_t remaining = 0;
};

extern const char* const kAgentVersion;

// Collects all evidence through `view` and judges it with `policy` (advisory verdicts).
v1::Attestation BuildAttestation(const collectors::SystemView& view, const v1::Policy& policy,
                                 const Clock& clock);

class Agent {
 public:
  Agent(const v1::AgentConfig& config, const collectors::SystemView& view, const Clock& clock);

  // Creates the key when missing and registers it with the server.
  Status Enroll(Transport& transport, const std::string& enroll_secret);
  // One attestation (unsigned) with advisory verdicts; device_id/sequence as given.
  v1::Attestation Collect(const std::string& device_id, uint64_t sequence) const;
  // Collects, reserves a sequence, signs and queues. Returns the sequence.
  Result<uint64_t> CollectAndQueue();
  // Sends everything queued, oldest first, in batches; stops at the first transport failure.
  Result<FlushStats> Flush(Transport& transport);

  const StateDir& state() const { return state_; }

 private:
  v1::Policy LocalPolicy() const;

  v1::AgentConfig config_;
  const collectors::SystemView& view_;
  const Clock& clock_;
  StateDir state_;
  Outbox outbox_;
};

}  // namespace vigil::agent

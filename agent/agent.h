// The agent's work, independent of how it is scheduled: collect evidence, judge it with the
// local (advisory) policy, reserve a sequence, sign, queue durably, and flush the outbox to the
// server oldest first. Transport is an interface so tests can drop or fail calls.
#pragma once

#include <functional>
#include <memory>
#include <optional>
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
  virtual Result<v1::RotateKeyResponse> RotateKey(const v1::RotateKeyRequest& req) = 0;
};

// How the agent reaches the server: TLS trusting `ca_pem` (the system roots when empty), with
// a client certificate when one was issued at enrollment; or plaintext when `insecure`.
struct TransportOptions {
  std::string server;
  std::chrono::seconds timeout{10};
  bool insecure = false;
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
};

// gRPC with a per-call deadline.
std::unique_ptr<Transport> NewGrpcTransport(const TransportOptions& options);

// Options from the configuration and the state directory (CA: config.ca_file, else
// state_dir/ca.crt; client certificate: state_dir/device.crt with the device key).
Result<TransportOptions> TransportOptionsFor(const v1::AgentConfig& config);

// Fills defaults and checks ranges; errors name the field.
Status NormalizeConfig(v1::AgentConfig* config);

// Reads an enrollment bundle (strict JSON; it holds a secret, so one others can read is refused).
Result<v1::EnrollBundle> LoadBundle(const std::string& path);

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

  // Creates the key when missing and registers it with the server, sending a CSR so a server
  // with a CA returns a client certificate (kept as state_dir/device.crt).
  Status Enroll(Transport& transport, const std::string& enroll_secret);
  // Replaces the device key: the new key (state_dir/device.key.next until the server confirms)
  // and the old one both sign the rotation statement. Resumes an interrupted rotation; a
  // rotation the server refuses for good is dropped. Attestations still queued under the old
  // key are re-signed with the new one when they are sent.
  Status RotateKey(Transport& transport);
  bool RotationPending() const;
  // The client certificate expires within kCertificateRenewalMs: rotate the key, which brings a
  // new one (certificates are issued for a year).
  bool CertificateNeedsRenewal() const;
  static constexpr int64_t kCertificateRenewalMs = 30LL * 86400 * 1000;
  // Enrolls with what the configuration names (bundle_file, else enroll_secret_file); a
  // bundle's CA is kept in the state directory first. NotFound when it names neither.
  Status EnrollFromConfig();
  // One attestation (unsigned) with advisory verdicts; device_id/sequence as given.
  v1::Attestation Collect(const std::string& device_id, uint64_t sequence) const;
  // Collects, reserves a sequence, signs and queues. Returns the sequence.
  Result<uint64_t> CollectAndQueue();
  // Sends everything queued, oldest first, in batches; stops at the first transport failure.
  Result<FlushStats> Flush(Transport& transport);

  const StateDir& state() const { return state_; }

  // The daemon's next collection, for `vigil-agent status` (wall-clock ms).
  void NoteNextRun(int64_t next_run_ms);

 private:
  // `*complete`: every check collected evidence (none is ERROR).
  Result<uint64_t> CollectAndQueueImpl(bool* complete);
  // The agent's health signed into each attestation: outbox, reports, last error, from
  // status.json and the outbox.
  v1::AgentHealth Health(size_t outbox_depth, uint64_t outbox_dropped, bool complete,
                         int64_t now_ms) const;
  static constexpr size_t kMaxHealthErrorBytes = 512;
  Result<FlushStats> FlushImpl(Transport& transport);
  // Records what just happened in state_dir/status.json; failures to record are only logged.
  void RecordRun(const std::function<void(v1::AgentRunStatus*)>& update);
  v1::Policy LocalPolicy() const;
  Status ResignIfRotated(v1::SignedAttestation* entry,
                         std::optional<signing::DeviceKey>* key) const;

  v1::AgentConfig config_;
  const collectors::SystemView& view_;
  const Clock& clock_;
  StateDir state_;
  Outbox outbox_;
};

}  // namespace vigil::agent

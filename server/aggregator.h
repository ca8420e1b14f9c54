// Aggregator: the server's domain logic for agents — enrollment, signature verification,
// replay detection, re-evaluation under the server's policy, and commit. Knows nothing of gRPC;
// the service layer converts. Thread-safe: reports are verified in parallel on the callers'
// threads and committed in groups (GroupCommitter); per-device order is the store's job
// (a newer sequence is never overtaken, a used sequence is a primary key). Enrollment and key
// rotation are serialized under one mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "proto/pki.h"
#include "server/auth.h"
#include "server/limits.h"
#include "server/policy_state.h"
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
  kAckResourceExhausted = 8,   // rate limited: keep it queued, retry later
  kAckFailedPrecondition = 9,  // device pending approval: keep it queued, retry later
  kAckUnauthenticated = 16,
  kAckInternal = 13,
};

// Network-supplied text made safe for logs and the audit log: printable ASCII, at most `max`.
std::string Printable(const std::string& text, size_t max = 128);

// Check ids are lower-case letters, digits and '_' (at most 64), e.g. "usb_storage".
bool IsValidCheckId(const std::string& id);

struct AggregatorOptions {
  uint32_t max_batch = 100;
  size_t max_attestation_bytes = 256u << 10;
  uint32_t max_checks = 64;
  // Live reports must be issued within this much of the server clock. Older ones (an agent's
  // queue after days offline) are kept as history only; newer ones are refused.
  int64_t live_window_ms = 10 * 60 * 1000;
  // Admission control: attestations being verified or waiting for their commit, server-wide.
  // Beyond it a report is answered at once with code 8 (busy: keep it queued, retry later), so
  // saturation bounds the wait (at most this many ahead of you) instead of growing a queue.
  uint32_t max_inflight = 2000;
  uint32_t reports_per_minute = 60;  // per device; 0 = unlimited
  uint32_t report_burst = 120;
  uint32_t failed_auth_per_minute = 10;  // per peer address, enrollment and tokens
  bool approve_devices = false;          // new devices stay PENDING until an admin approves
  bool require_client_cert = false;      // Report needs a verified client cert (and Enroll a CSR)
  const pki::KeyAndCert* ca = nullptr;   // issues client certificates for CSRs when set
  int client_cert_days = 365;
};

// What the transport knows about a call: the peer's address, and the device id (certificate
// common name) when the peer presented a client certificate that chains to the server's CA.
struct CallInfo {
  std::string peer;
  std::string client_cert_device;
  std::string client_cert_key;  // the certificate's raw Ed25519 key
};

// Group commit: one writer thread turns the attestations that arrive while it is committing into
// one transaction (one fsync for all of them). Commit() returns only after the transaction that
// holds its attestation committed, so acknowledgements still follow the commit. A batch that
// fails as a whole is retried one attestation at a time, so each caller gets its own answer.
class GroupCommitter {
 public:
  GroupCommitter(Store& store, size_t max_batch);
  ~GroupCommitter();  // commits what is queued, then stops
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  Status Commit(const AcceptedAttestation& accepted);
  // Several attestations of one report, queued together and in order so they share a group.
  // A chain: once one fails (other than AlreadyExists), the later ones are not committed and
  // answer Unavailable, so an agent's retry of the failed one is never taken for a replay.
  std::vector<Status> CommitChain(const std::vector<const AcceptedAttestation*>& chain);

 private:
  struct Chain {
    bool failed = false;  // touched only by the committer thread
  };
  struct Item {
    const AcceptedAttestation* accepted;
    std::promise<Status> done;
    std::shared_ptr<Chain> chain;  // null for a lone attestation
  };
  // Answers an item whose chain already failed (true), without committing it.
  static bool SkipIfChainFailed(Item* item);
  static void Settle(Item* item, Status s);
  void Run();

  Store& store_;
  const size_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item*> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class Aggregator {
 public:
  // `policy` is the policy in force (shared with Fleet and the policy changes; swapped whole).
  Aggregator(Store& store, const Clock& clock, Credentials& credentials, Counters& counters,
             PolicyState& policy, AggregatorOptions options);
  // Under a fixed policy of its own (UnstoredSnapshot): tests, benchmarks, fuzzers.
  Aggregator(Store& store, const Clock& clock, Credentials& credentials, Counters& counters,
             const v1::Policy& policy, AggregatorOptions options);

  Result<v1::EnrollResponse> Enroll(const v1::EnrollRequest& request, const CallInfo& call = {});
  Result<v1::ReportResponse> Report(const v1::ReportRequest& request, const CallInfo& call = {});
  Result<v1::RotateKeyResponse> RotateKey(const v1::RotateKeyRequest& request,
                                          const CallInfo& call = {});

  // False (and counted) when `peer` has failed authentication too often lately.
  bool AuthAllowed(const std::string& peer);
  void AuthFailed(const std::string& peer, const std::string& what, const std::string& detail);

  // Re-judges every device whose stored verdicts came from another policy version or another
  // set of exceptions (server/policy_state.h).
  Status ReevaluateFleet();

  PolicyState& policy() { return policy_; }

 private:
  // Everything decided about an attestation before its commit.
  struct Prepared {
    AcceptedAttestation accepted;  // with the device's state after it
    DeviceRecord device_before;
    DeviceRecord state_after;  // the device once this commits (history moves only the sequence)
    v1::DeviceStatus status_before = v1::UNKNOWN;
    int64_t age_ms = 0;  // receipt minus issue time
  };
  // The device's effective policy as last seen while preparing a report's attestations (any
  // that verified, even if refused later), and the version its agent judged with.
  struct PolicySeen {
    std::shared_ptr<const collectors::ResolvedPolicy> effective;
    std::string agent_version;
  };
  // An immediate answer, or an attestation prepared for commit.
  struct Step {
    Step() = default;
    Step(v1::AttestationAck a) : ack(std::move(a)) {}  // NOLINT: implicit, for `return Reject()`
    v1::AttestationAck ack;
    std::unique_ptr<Prepared> prepared;
    // Its sequence does not move a device with attestations pending in this report forward:
    // commit those first, then prepare it again against the store.
    bool needs_flush = false;
  };
  using PendingStates = std::unordered_map<std::string, const DeviceRecord*>;
  // Verifies and judges one attestation; a device in `pending` is judged by its state after the
  // attestations earlier in the same report, which are prepared but not committed yet.
  Step Prepare(const v1::SignedAttestation& signed_att, const CallInfo& call,
               const PendingStates& pending, PolicySeen* seen);
  v1::AttestationAck Finish(const Prepared& prepared, const Status& committed);
  v1::AttestationAck UsedSequence(const DeviceRecord& device, uint64_t sequence,
                                  const std::string& digest);
  v1::AttestationAck Reject(const std::string& device_id, int32_t code, const std::string& counter,
                            const std::string& message, bool tamper);
  Result<std::string> IssueClientCert(const std::string& csr, const std::string& public_key,
                                      const std::string& device_id);

  Store& store_;
  const Clock& clock_;
  Credentials& credentials_;
  Counters& counters_;
  RateLimiter report_limiter_;
  RateLimiter auth_failure_limiter_;
  GroupCommitter committer_;
  std::unique_ptr<PolicyState> owned_policy_;  // the fixed-policy constructor's
  PolicyState& policy_;
  const AggregatorOptions options_;
  std::mutex ingest_mu_;
  std::atomic<uint32_t> inflight_{0};
};

}  // namespace vigil::server

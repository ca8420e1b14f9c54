#include "server/aggregator.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "collectors/evaluate.h"
#include "collectors/policy.h"
#include "proto/signing.h"
#include "vigil/v1/agent_service.pb.h"

namespace vigil::server {
namespace {

// Device-signed times are untrusted: clamp to years 0..9999 so arithmetic cannot overflow.
int64_t ToMillis(const google::protobuf::Timestamp& t) {
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  int64_t secs = std::clamp<int64_t>(t.seconds(), 0, kMaxSeconds);
  return secs * 1000 + std::clamp<int32_t>(t.nanos(), 0, 999999999) / 1000000;
}

std::string PeerHost(const std::string& peer) {
  // gRPC peers look like "ipv4:127.0.0.1:5555" or "ipv6:[::1]:5555": limit by address, not port.
  size_t colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

std::string Seconds(int64_t ms) { return std::to_string(ms / 1000) + " s"; }

}  // namespace

// Text from the network on its way into logs and the audit log: printable ASCII only (no line
// breaks to forge entries with), cut to `max` bytes.
std::string Printable(const std::string& text, size_t max) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out;
}

namespace {}  // namespace

bool IsValidCheckId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char ch : id) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return false;
  }
  return true;
}

GroupCommitter::GroupCommitter(Store& store, size_t max_batch)
    : store_(store), max_batch_(max_batch), thread_([this] { Run(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status GroupCommitter::Commit(const AcceptedAttestation& accepted) {
  return CommitChain({&accepted}).front();
}

std::vector<Status> GroupCommitter::CommitChain(
    const std::vector<const AcceptedAttestation*>& chain) {
  std::vector<Item> items(chain.size());
  auto shared = chain.size() > 1 ? std::make_shared<Chain>() : nullptr;
  std::vector<std::future<Status>> done;
  for (size_t i = 0; i < chain.size(); ++i) {
    items[i].accepted = chain[i];
    items[i].chain = shared;
    done.push_back(items[i].done.get_future());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Item& item : items) queue_.push_back(&item);
  }
  cv_.notify_one();
  std::vector<Status> out;
  for (auto& d : done) out.push_back(d.get());
  return out;
}

void GroupCommitter::Settle(Item* item, Status s) {
  // A duplicate or a revoked device does not stop the rest: neither can make a later sequence
  // of this report look like a replay (a revoked device's later ones are refused as well).
  if (item->chain && !s.ok() && s.code() != Status::Code::kAlreadyExists &&
      s.code() != Status::Code::kFailedPrecondition) {
    item->chain->failed = true;
  }
  item->done.set_value(std::move(s));
}

bool GroupCommitter::SkipIfChainFailed(Item* item) {
  if (!item->chain || !item->chain->failed) return false;
  item->done.set_value(Status::Unavailable("an earlier attestation of this report was not stored"));
  return true;
}

void GroupCommitter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::vector<Item*> batch;
    while (!queue_.empty() && batch.size() < max_batch_) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    std::erase_if(batch, [](Item* item) { return SkipIfChainFailed(item); });
    std::vector<const AcceptedAttestation*> group;
    group.reserve(batch.size());
    for (Item* item : batch) group.push_back(item->accepted);
    Status s = group.empty() ? Status::Ok() : store_.CommitAttestations(group);
    if (s.ok() || batch.size() == 1) {
      for (Item* item : batch) Settle(item, s);
    } else {
      // One bad apple (a duplicate, a revoked device) fails the group: answer each on its own,
      // in order, skipping what follows a failure in the same report.
      for (Item* item : batch) {
        if (!SkipIfChainFailed(item)) Settle(item, store_.CommitAttestation(*item->accepted));
      }
    }
    lock.lock();
  }
}

Aggregator::Aggregator(Store& store, const Clock& clock, Credentials& credentials,
                       Counters& counters, PolicyState& policy, AggregatorOptions options)
    : store_(store),
      clock_(clock),
      credentials_(credentials),
      counters_(counters),
      report_limiter_(clock, options.reports_per_minute, options.report_burst),
      auth_failure_limiter_(clock, options.failed_auth_per_minute, options.failed_auth_per_minute),
      committer_(store, 512),
      policy_(policy),
      options_(std::move(options)) {}

Aggregator::Aggregator(Store& store, const Clock& clock, Credentials& credentials,
                       Counters& counters, const v1::Policy& policy, AggregatorOptions options)
    : store_(store),
      clock_(clock),
      credentials_(credentials),
      counters_(counters),
      report_limiter_(clock, options.reports_per_minute, options.report_burst),
      auth_failure_limiter_(clock, options.failed_auth_per_minute, options.failed_auth_per_minute),
      committer_(store, 512),
      owned_policy_(std::make_unique<PolicyState>(UnstoredSnapshot(policy))),
      policy_(*owned_policy_),
      options_(std::move(options)) {}

bool Aggregator::AuthAllowed(const std::string& peer) {
  if (auth_failure_limiter_.HasToken(PeerHost(peer))) return true;
  counters_.Inc("auth.rejected.rate_limited");
  return false;
}

void Aggregator::AuthFailed(const std::string& peer, const std::string& what,
                            const std::string& detail) {
  counters_.Inc(what);
  // Only failures within the per-address budget are written: concurrent attempts that all
  // passed AuthAllowed cannot fill the log.
  if (!auth_failure_limiter_.TryTake(PeerHost(peer))) return;
  AuditRecord audit{clock_.NowMillis(),     "peer:" + Printable(peer),
                    "auth.failed",          what,
                    Printable(detail, 512), false};
  if (Status s = store_.AppendAudit(audit); !s.ok()) {
    spdlog::error("cannot append to the audit log: {}", s.ToString());
  }
}

Result<std::string> Aggregator::IssueClientCert(const std::string& csr,
                                                const std::string& public_key,
                                                const std::string& device_id) {
  if (csr.empty() || options_.ca == nullptr) return std::string();
  if (Status s = pki::CheckCsr(csr, public_key); !s.ok()) return s;
  return pki::IssueClientCert(*options_.ca, csr, device_id, clock_.NowMillis() / 1000,
                              options_.client_cert_days);
}

Result<v1::EnrollResponse> Aggregator::Enroll(const v1::EnrollRequest& req, const CallInfo& call) {
  if (!AuthAllowed(call.peer)) {
    return Status::ResourceExhausted("too many failed attempts from this address; retry later");
  }
  // Sizes first: nothing unbounded from an unauthenticated caller reaches a log or the store.
  if (req.public_key().size() != signing::kPublicKeySize) {
    counters_.Inc("enroll.rejected.bad_key");
    return Status::InvalidArgument("public_key must be a raw 32-byte Ed25519 key");
  }
  if (req.hostname().size() > 255) {
    counters_.Inc("enroll.rejected.bad_hostname");
    return Status::InvalidArgument("hostname longer than 255 bytes");
  }
  if (req.csr().size() > 8192 || req.enroll_secret().size() > 256 ||
      req.platform().ByteSizeLong() > 4096) {
    counters_.Inc("enroll.rejected.too_large");
    return Status::InvalidArgument(
        "csr (8 KiB), enroll_secret (256 B) or platform (4 KiB) too large");
  }
  const std::string host = Printable(req.hostname(), 255);
  auto secret = credentials_.Check(CredentialKind::kEnrollSecret, req.enroll_secret());
  if (!secret.ok()) {
    // Never log or store the presented secret: it may be a real one with a typo.
    spdlog::warn("enrollment rejected from {} (host '{}'): {}", Printable(call.peer), host,
                 secret.status().message());
    AuthFailed(call.peer, "enroll.rejected.bad_secret",
               "host '" + host + "': " + secret.status().message());
    return secret.status().code() == Status::Code::kPermissionDenied
               ? secret.status()
               : Status::PermissionDenied("invalid enroll secret");
  }
  if (options_.require_client_cert && req.csr().empty()) {
    // Mutual TLS needs a certificate, and the CSR proves the caller holds the key it enrolls.
    counters_.Inc("enroll.rejected.bad_csr");
    return Status::InvalidArgument("csr: required by this server (mutual TLS)");
  }
  std::string key_id = signing::KeyIdOf(req.public_key());
  v1::EnrollResponse resp;
  std::lock_guard<std::mutex> lock(ingest_mu_);
  auto existing = store_.FindDeviceByKeyId(key_id);
  if (!existing.ok()) return existing.status();
  DeviceRecord d;
  if (existing->has_value()) {
    d = std::move(**existing);  // same key enrolling again: same device
    if (d.revoked_at_ms != 0) {
      counters_.Inc("enroll.rejected.revoked");
      return Status::PermissionDenied("device " + d.id + " is revoked");
    }
  } else {
    d.id = "dev-" + signing::Hex(key_id).substr(0, 20);
    d.key_id = key_id;
    d.public_key = req.public_key();
    d.hostname = host;
    d.platform = req.platform();
    d.enrolled_at_ms = clock_.NowMillis();
    d.status = v1::UNKNOWN;
    d.pending = options_.approve_devices;
  }
  // Check the CSR before storing anything, so a bad one leaves no device behind.
  auto cert = IssueClientCert(req.csr(), req.public_key(), d.id);
  if (!cert.ok()) {
    counters_.Inc("enroll.rejected.bad_csr");
    return cert.status();
  }
  if (!existing->has_value()) {
    AuditRecord audit{d.enrolled_at_ms,
                      "peer:" + Printable(call.peer),
                      "device.enroll",
                      d.id,
                      "host '" + d.hostname + "', enroll secret '" + secret->name + "'" +
                          (d.pending ? ", pending approval" : ""),
                      true};
    if (Status s = store_.InsertDevice(d, audit); !s.ok()) return s;
    spdlog::info("enrolled device {} (host '{}'){}", d.id, d.hostname,
                 d.pending ? ", pending approval" : "");
  }
  counters_.Inc("enroll.accepted");
  resp.set_device_id(d.id);
  *resp.mutable_policy() = policy_.Get()->Resolve(d.platform.os(), d.tags)->policy;
  resp.set_client_certificate(*cert);
  resp.set_status(d.pending ? v1::PENDING : v1::UNKNOWN);
  return resp;
}

Result<v1::ReportResponse> Aggregator::Report(const v1::ReportRequest& req, const CallInfo& call) {
  if (options_.require_client_cert && call.client_cert_device.empty()) {
    counters_.Inc("report.rejected.no_client_cert");
    return Status::Unauthenticated(
        "this server requires a client certificate (mutual TLS); enroll again to get one");
  }
  if (req.attestations_size() == 0) {
    counters_.Inc("report.rejected.empty");
    return Status::InvalidArgument("report carries no attestations");
  }
  if (static_cast<uint32_t>(req.attestations_size()) > options_.max_batch) {
    counters_.Inc("report.rejected.batch_too_large");
    return Status::InvalidArgument("report carries " + std::to_string(req.attestations_size()) +
                                   " attestations; the limit is " +
                                   std::to_string(options_.max_batch));
  }
  v1::ReportResponse resp;
  const uint32_t n = static_cast<uint32_t>(req.attestations_size());
  // Admitted unless it would take the server past max_inflight; an idle server admits any
  // report, so no report is refused forever. Refused reports never count as in flight.
  uint32_t before = inflight_.load();
  bool admitted;
  do {
    admitted = options_.max_inflight == 0 || before == 0 || before + n <= options_.max_inflight;
  } while (admitted && !inflight_.compare_exchange_weak(before, before + n));
  struct Release {
    std::atomic<uint32_t>& inflight;
    uint32_t n;
    ~Release() {
      if (n != 0) inflight -= n;
    }
  } release{inflight_, admitted ? n : 0};
  if (!admitted) {
    // Refused before any work: cheap, and nothing of it is stored, so the agent's retry (with
    // its backoff and jitter) is judged afresh.
    counters_.Inc("report.rejected.overloaded", n);
    for (uint32_t i = 0; i < n; ++i) {
      auto* ack = resp.add_acks();
      ack->set_code(kAckResourceExhausted);
      ack->set_message("server busy (" + std::to_string(before) +
                       " attestations in flight); keep it queued and retry later");
    }
    return resp;
  }
  // The report's attestations are prepared (verified, judged) in order, then committed together
  // as one chain (one group commit for the lot instead of one per attestation). A device seen
  // twice is judged against its state after the earlier one; an attestation that does not move
  // its device forward (a repeat inside the report) first waits for what is pending, so it is
  // judged against the store exactly as if the report had been processed one by one.
  std::vector<Step> steps;
  std::vector<size_t> pending;  // indexes into steps of prepared attestations not yet committed
  PendingStates pending_state;
  // Commits what is pending; false when any of it was not stored (a storage failure).
  auto flush = [&] {
    std::vector<const AcceptedAttestation*> chain;
    for (size_t i : pending) chain.push_back(&steps[i].prepared->accepted);
    std::vector<Status> results = committer_.CommitChain(chain);
    bool stored = true;
    for (size_t k = 0; k < pending.size(); ++k) {
      Step& st = steps[pending[k]];
      st.ack = Finish(*st.prepared, results[k]);
      if (st.ack.code() == kAckInternal) stored = false;
    }
    pending.clear();
    pending_state.clear();
    return stored;
  };
  int32_t stopped = 0;
  PolicySeen seen;
  for (const auto& signed_att : req.attestations()) {
    Step st;
    if (stopped == 0) {
      st = Prepare(signed_att, call, pending_state, &seen);
      if (st.needs_flush) {
        if (flush()) {
          st = Prepare(signed_att, call, pending_state, &seen);
        } else {
          stopped = kAckInternal;
        }
      }
    }
    if (stopped != 0) {
      // Nothing later in the batch is committed after a transient refusal: committing a later
      // sequence would make the agent's retry of the refused one look like a replay.
      v1::AttestationAck ack;
      ack.set_code(stopped);
      ack.set_message("not processed: an earlier attestation in this batch was not stored");
      steps.emplace_back(std::move(ack));
      continue;
    }
    if (!st.prepared) {
      int32_t code = st.ack.code();
      if (code == kAckInternal || code == kAckResourceExhausted || code == kAckFailedPrecondition) {
        stopped = code;
      }
    }
    steps.push_back(std::move(st));
    if (steps.back().prepared) {
      pending.push_back(steps.size() - 1);
      const AcceptedAttestation& a = steps.back().prepared->accepted;
      pending_state[a.device_id] = &steps.back().prepared->state_after;
    }
  }
  if (!pending.empty()) flush();
  // The device's policy version whenever one of its attestations verified (a duplicate or a
  // rate-limited one too); the policy itself when the agent judged with another version, so it
  // catches up with its next collection.
  if (seen.effective) {
    const v1::Policy& effective = seen.effective->policy;
    resp.set_policy_version(effective.version());
    if (seen.agent_version != effective.version()) *resp.mutable_policy() = effective;
  }
  for (Step& st : steps) *resp.add_acks() = std::move(st.ack);
  return resp;
}

v1::AttestationAck Aggregator::Reject(const std::string& device_id, int32_t code,
                                      const std::string& counter, const std::string& message,
                                      bool tamper) {
  counters_.Inc("report.rejected." + counter);
  v1::AttestationAck ack;
  ack.set_code(code);
  ack.set_message(message);
  if (tamper && !device_id.empty()) {
    spdlog::warn("device {} flagged TAMPERED: {}", device_id, message);
    int64_t now = clock_.NowMillis();
    AuditRecord audit{now, "device:" + device_id, "device.tampered", device_id, message, false};
    if (Status s = store_.MarkTampered(device_id, message, now, audit); !s.ok()) {
      spdlog::error("cannot flag device {}: {}", device_id, s.ToString());
    }
    ack.set_device_status(v1::TAMPERED);
  } else {
    spdlog::warn("attestation rejected: {}", message);
  }
  return ack;
}

Aggregator::Step Aggregator::Prepare(const v1::SignedAttestation& signed_att, const CallInfo& call,
                                     const PendingStates& pending, PolicySeen* seen) {
  if (signed_att.key_id().size() != 32) {
    return Reject("", kAckInvalidArgument, "bad_key_id",
                  "key_id must be 32 bytes (SHA-256 of the public key)", false);
  }
  if (signed_att.attestation().size() > options_.max_attestation_bytes) {
    return Reject("", kAckInvalidArgument, "too_large",
                  "attestation of " + std::to_string(signed_att.attestation().size()) +
                      " bytes is larger than the limit of " +
                      std::to_string(options_.max_attestation_bytes),
                  false);
  }
  // No lock: verification runs in parallel on the callers' threads; the store keeps each
  // device's order (see CommitAttestation) and the committer groups the writes.
  auto found = store_.FindDeviceByKeyId(signed_att.key_id());
  if (!found.ok()) return Reject("", kAckInternal, "storage", found.status().ToString(), false);
  if (!found->has_value()) {
    // Nobody enrolled this key. If the bytes claim to come from a known device, someone is
    // forging reports for it: flag that device so the security team looks.
    v1::Attestation claimed;
    std::string victim;
    // Over mutual TLS the connection names its device: a report for another device from it is
    // refused without flagging the other (one enrolled device must not be able to get its
    // neighbours flagged by sending junk in their name).
    if (claimed.ParseFromString(signed_att.attestation()) && !claimed.device_id().empty() &&
        (call.client_cert_device.empty() || call.client_cert_device == claimed.device_id())) {
      auto d = store_.GetDevice(claimed.device_id());
      if (d.ok() && d->has_value() && (*d)->revoked_at_ms == 0 && !(*d)->tampered &&
          (call.client_cert_device.empty() || call.client_cert_key == (*d)->public_key)) {
        victim = (*d)->id;
      }
    }
    return Reject(victim, kAckUnauthenticated, "unknown_key",
                  "attestation signed by an unknown key (not enrolled)", !victim.empty());
  }
  DeviceRecord device = std::move(**found);
  // A device with an attestation earlier in this report, prepared but not committed yet: judge
  // this one against that state, as if it had committed (Report commits them together).
  auto earlier = pending.find(device.id);
  const bool from_pending = earlier != pending.end();
  if (from_pending) {
    // Only what a commit changes comes from the pending state; flags, revocation and the key
    // are as the store has them now (a tamper flag set by an earlier attestation of this report
    // counts).
    const DeviceRecord& p = *earlier->second;
    device.last_sequence = p.last_sequence;
    device.last_seen_ms = p.last_seen_ms;
    device.status = p.status;
    device.status_reason = p.status_reason;
    device.failing_checks = p.failing_checks;
    device.policy_version = p.policy_version;
    device.platform = p.platform;
    device.hostname = p.hostname;
  }
  if (device.revoked_at_ms != 0) {
    v1::AttestationAck ack =
        Reject("", kAckPermissionDenied, "revoked", "device " + device.id + " is revoked", false);
    ack.set_device_status(v1::REVOKED);
    return ack;
  }
  if (!call.client_cert_device.empty() &&
      (call.client_cert_device != device.id || call.client_cert_key != device.public_key)) {
    // The name alone is not enough: after a key rotation the old certificate is still within
    // its validity, but it no longer speaks for the device.
    return Reject("", kAckPermissionDenied, "client_cert_mismatch",
                  "the connection's client certificate is for " +
                      Printable(call.client_cert_device) +
                      (call.client_cert_device == device.id ? " with a retired key" : "") +
                      ", not " + device.id,
                  false);
  }
  auto verified = signing::VerifyAttestation(signed_att, device.public_key);
  if (!verified.ok()) {
    if (verified.status().code() == Status::Code::kInvalidArgument) {
      return Reject(device.id, kAckInvalidArgument, "malformed", verified.status().message(), true);
    }
    return Reject(device.id, kAckPermissionDenied, "bad_signature",
                  "signature does not verify with the device's enrolled key", true);
  }
  v1::Attestation att = std::move(verified).value();
  auto with_sequence = [&](v1::AttestationAck ack) {
    ack.set_sequence(att.sequence());
    return ack;
  };
  if (att.device_id() != device.id) {
    return with_sequence(Reject(
        device.id, kAckPermissionDenied, "device_mismatch",
        "attestation for device '" + att.device_id() + "' signed with the key of " + device.id,
        true));
  }
  // Verified: from here the device is who it says, and learns its policy version.
  seen->effective = policy_.Get()->Resolve(device.platform.os(), device.tags);
  seen->agent_version = att.policy_version();
  if (att.sequence() == 0) {
    return with_sequence(
        Reject(device.id, kAckInvalidArgument, "bad_sequence", "sequence must start at 1", false));
  }
  if (static_cast<uint32_t>(att.checks_size()) > options_.max_checks) {
    return with_sequence(Reject("", kAckInvalidArgument, "too_many_checks",
                                "attestation carries " + std::to_string(att.checks_size()) +
                                    " checks; the limit is " + std::to_string(options_.max_checks),
                                false));
  }
  std::string digest = signing::Sha256(signed_att.attestation());
  if (att.sequence() <= device.last_sequence) {
    if (from_pending) {
      Step again;
      again.needs_flush = true;
      return again;
    }
    return with_sequence(UsedSequence(device, att.sequence(), digest));
  }
  if (device.pending) {
    return with_sequence(Reject("", kAckFailedPrecondition, "pending",
                                "device " + device.id + " is waiting for an admin's approval",
                                false));
  }
  int64_t now = clock_.NowMillis();
  int64_t issued = ToMillis(att.issued_at());
  if (issued > now + options_.live_window_ms) {
    return with_sequence(Reject("", kAckInvalidArgument, "issued_in_future",
                                "issued_at is " + Seconds(issued - now) +
                                    " ahead of the server clock (window " +
                                    Seconds(options_.live_window_ms) + "); fix the device clock",
                                false));
  }
  if (!report_limiter_.TryTake(device.id)) {
    return with_sequence(Reject("", kAckResourceExhausted, "rate_limited",
                                "device " + device.id + " exceeds " +
                                    std::to_string(options_.reports_per_minute) +
                                    " attestations per minute; retry later",
                                false));
  }

  auto prepared = std::make_unique<Prepared>();
  AcceptedAttestation& accepted = prepared->accepted;
  accepted.device_id = device.id;
  accepted.sequence = att.sequence();
  accepted.digest = digest;
  accepted.issued_at_ms = issued;
  accepted.received_at_ms = now;
  accepted.envelope = signed_att;
  // An attestation issued long ago (an agent's queue after days offline) is history: it cannot
  // speak for the device's state now, so it neither sets the status nor refreshes last-seen.
  accepted.live = issued >= now - options_.live_window_ms;
  prepared->status_before = device.tampered ? v1::TAMPERED : device.status;
  prepared->age_ms = now - issued;
  prepared->device_before = device;
  device.last_sequence = att.sequence();
  if (accepted.live) {
    device.last_seen_ms = now;
    device.platform = att.platform();
    if (!att.platform().hostname().empty()) device.hostname = att.platform().hostname();
  }
  auto snapshot = policy_.Get();
  seen->effective = snapshot->Resolve(device.platform.os(), device.tags);  // with its new platform
  JudgeDevice(*snapshot, *seen->effective, now, &att, &device);
  att.SerializeToString(&device.latest_attestation);
  accepted.device_after = std::move(device);
  // What the device looks like once this commits: a history-only attestation moves only the
  // sequence (the store keeps its verdict in the history row, not on the device).
  if (accepted.live) {
    prepared->state_after = accepted.device_after;
  } else {
    prepared->state_after = prepared->device_before;
    prepared->state_after.last_sequence = accepted.sequence;
  }
  Step step;
  step.prepared = std::move(prepared);
  return step;
}

v1::AttestationAck Aggregator::UsedSequence(const DeviceRecord& device, uint64_t sequence,
                                            const std::string& digest) {
  // A used sequence: the same bytes again (a lost acknowledgement) or a replay.
  auto stored = store_.AttestationDigest(device.id, sequence);
  if (!stored.ok()) return Reject("", kAckInternal, "storage", stored.status().ToString(), false);
  if (stored->has_value() && **stored == digest) {
    // The agent lost our acknowledgement and sent the same bytes again: acknowledge again.
    counters_.Inc("report.duplicate");
    v1::AttestationAck ack;
    ack.set_code(kAckAlreadyExists);
    ack.set_message("already stored");
    ack.set_device_status(device.tampered ? v1::TAMPERED : device.status);
    return ack;
  }
  return Reject(device.id, kAckPermissionDenied, "replay",
                "replay: sequence " + std::to_string(sequence) +
                    (stored->has_value() ? " was already used by a different attestation"
                                         : " is not newer than the last accepted " +
                                               std::to_string(device.last_sequence)),
                true);
}

v1::AttestationAck Aggregator::Finish(const Prepared& p, const Status& committed) {
  const AcceptedAttestation& accepted = p.accepted;
  const DeviceRecord& device = accepted.device_after;
  v1::AttestationAck ack;
  if (committed.code() == Status::Code::kAlreadyExists) {
    // The same sequence committed meanwhile (a resend racing the original): judge it as used.
    ack = UsedSequence(p.device_before, accepted.sequence, accepted.digest);
  } else if (committed.code() == Status::Code::kFailedPrecondition) {
    // Revoked between our read and the commit: refused like any report of a revoked device.
    ack = Reject("", kAckPermissionDenied, "revoked", "device " + device.id + " is revoked", false);
    ack.set_device_status(v1::REVOKED);
  } else if (!committed.ok()) {
    spdlog::error("cannot store attestation {} of {}: {}", accepted.sequence, device.id,
                  committed.ToString());
    counters_.Inc("report.rejected.storage");
    ack.set_code(kAckInternal);
    ack.set_message("not stored: " + committed.message());
  } else {
    counters_.Inc(accepted.live ? "report.accepted" : "report.accepted_history");
    ack.set_code(kAckOk);
    ack.set_device_status(device.tampered ? v1::TAMPERED : device.status);
    if (!accepted.live) {
      ack.set_message("stored as history: issued " + Seconds(p.age_ms) +
                      " ago, outside the live window");
      ack.set_device_status(p.status_before);
    }
  }
  ack.set_sequence(accepted.sequence);
  return ack;
}

Result<v1::RotateKeyResponse> Aggregator::RotateKey(const v1::RotateKeyRequest& req,
                                                    const CallInfo& call) {
  auto reject = [&](const std::string& counter, Status s) {
    counters_.Inc("rotate.rejected." + counter);
    return s;
  };
  // No client certificate needed: the current key's signature is the stronger proof, and an
  // agent whose certificate expired must be able to rotate to get a new one.
  v1::KeyRotation rot;
  if (req.rotation().size() > 4096 || !rot.ParseFromString(req.rotation())) {
    return reject("malformed", Status::InvalidArgument("rotation: not a KeyRotation message"));
  }
  if (rot.new_public_key().size() != signing::kPublicKeySize || rot.old_key_id().size() != 32) {
    return reject("malformed", Status::InvalidArgument(
                                   "rotation: new_public_key must be 32 bytes, old_key_id 32"));
  }
  if (req.csr().size() > 8192) {
    return reject("bad_csr", Status::InvalidArgument("csr larger than 8 KiB"));
  }
  if (!call.client_cert_device.empty() && call.client_cert_device != rot.device_id()) {
    return reject("client_cert_mismatch",
                  Status::PermissionDenied("the connection's client certificate is for " +
                                           call.client_cert_device + ", not " + rot.device_id()));
  }
  std::lock_guard<std::mutex> lock(ingest_mu_);
  auto found = store_.GetDevice(rot.device_id());
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return reject("unknown_device", Status::PermissionDenied("unknown device"));
  }
  DeviceRecord d = std::move(**found);
  if (d.revoked_at_ms != 0) {
    return reject("revoked", Status::PermissionDenied("device " + d.id + " is revoked"));
  }
  std::string new_key_id = signing::KeyIdOf(rot.new_public_key());
  std::string signed_bytes = std::string(signing::kRotationDomain) + req.rotation();
  if (Status s = signing::Verify(rot.new_public_key(), signed_bytes, req.new_signature());
      !s.ok()) {
    return reject("bad_signature",
                  Status::PermissionDenied("rotation: the new key's signature does not verify"));
  }
  v1::RotateKeyResponse resp;
  if (d.key_id == new_key_id) {
    // A retry after a lost answer: the rotation already happened.
    auto cert = IssueClientCert(req.csr(), rot.new_public_key(), d.id);
    if (!cert.ok()) return reject("bad_csr", cert.status());
    resp.set_client_certificate(*cert);
    return resp;
  }
  if (d.key_id != rot.old_key_id()) {
    return reject("stale", Status::FailedPrecondition(
                               "rotation: old_key_id is not the device's current key"));
  }
  if (Status s = signing::Verify(d.public_key, signed_bytes, req.old_signature()); !s.ok()) {
    AuthFailed(call.peer, "rotate.rejected.bad_signature",
               "key rotation for " + d.id + ": the current key's signature does not verify");
    return Status::PermissionDenied("rotation: the current key's signature does not verify");
  }
  int64_t now = clock_.NowMillis();
  int64_t issued = ToMillis(rot.issued_at());
  if (issued < now - options_.live_window_ms || issued > now + options_.live_window_ms) {
    return reject("stale", Status::FailedPrecondition(
                               "rotation: issued_at is outside the window of " +
                               Seconds(options_.live_window_ms) + " around the server clock"));
  }
  auto cert = IssueClientCert(req.csr(), rot.new_public_key(), d.id);
  if (!cert.ok()) return reject("bad_csr", cert.status());
  AuditRecord audit{now,
                    "device:" + d.id,
                    "device.rotate_key",
                    d.id,
                    "new key " + signing::Hex(new_key_id).substr(0, 16),
                    true};
  if (Status s =
          store_.ReplaceDeviceKey(d.id, d.key_id, rot.new_public_key(), new_key_id, now, audit);
      !s.ok()) {
    return reject(s.code() == Status::Code::kAlreadyExists ? "key_in_use" : "storage", s);
  }
  counters_.Inc("rotate.accepted");
  spdlog::info("device {} rotated its key", d.id);
  resp.set_client_certificate(*cert);
  return resp;
}

Status Aggregator::ReevaluateFleet() {
  auto result = server::ReevaluateFleet(store_, *policy_.Get(), clock_.NowMillis());
  return result.ok() ? Status::Ok() : result.status();
}

}  // namespace vigil::server

#include "agent/agent.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <set>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"
#include "collectors/policy.h"
#include "collectors/utf8.h"
#include "common/files.h"
#include "proto/json.h"
#include "proto/pki.h"
#include "proto/signing.h"

namespace vigil::agent {
namespace {

// At most `max` bytes, cut before a UTF-8 continuation byte so a character is never split.
std::string TruncateUtf8(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

const char* const kAgentVersion = "0.1.0";

Status NormalizeConfig(v1::AgentConfig* c) {
  if (c->root().empty()) c->set_root("/");
  if (c->interval_seconds() == 0) c->set_interval_seconds(3600);
  if (c->interval_seconds() < 10 || c->interval_seconds() > 86400) {
    return Status::InvalidArgument("intervalSeconds: must be 10..86400, got " +
                                   std::to_string(c->interval_seconds()));
  }
  if (c->jitter_seconds() == 0) c->set_jitter_seconds(c->interval_seconds() / 10);
  if (c->jitter_seconds() > c->interval_seconds()) {
    return Status::InvalidArgument("jitterSeconds: must not exceed intervalSeconds");
  }
  if (c->rpc_timeout_seconds() == 0) c->set_rpc_timeout_seconds(10);
  if (c->rpc_timeout_seconds() > 600) {
    return Status::InvalidArgument("rpcTimeoutSeconds: must be 1..600");
  }
  if (c->max_batch() == 0) c->set_max_batch(50);
  if (c->max_batch() > 100) return Status::InvalidArgument("maxBatch: must be 1..100");
  if (c->outbox_max_entries() == 0) c->set_outbox_max_entries(Outbox::kDefaultMaxEntries);
  if (c->outbox_max_entries() < 10 || c->outbox_max_entries() > 1000000) {
    return Status::InvalidArgument("outboxMaxEntries: must be 10..1000000");
  }
  return Status::Ok();
}

Result<TransportOptions> TransportOptionsFor(const v1::AgentConfig& config) {
  TransportOptions o;
  o.server = config.server();
  o.timeout = std::chrono::seconds(config.rpc_timeout_seconds());
  o.insecure = config.insecure();
  if (o.insecure) return o;
  StateDir state(config.state_dir());
  if (!config.ca_file().empty()) {
    auto ca = ReadWholeFile(config.ca_file(), 1u << 20);
    if (!ca.ok()) return ca.status();
    o.ca_pem = *ca;
  } else {
    o.ca_pem = state.CaCertificate();
  }
  if (Status s = state.FinishPromotion(); !s.ok()) return s;
  o.client_cert_pem = state.ClientCertificate();
  if (!o.client_cert_pem.empty()) {
    auto not_after = pki::CertNotAfter(o.client_cert_pem);
    if (!not_after.ok() || *not_after * 1000 <= SystemClock().NowMillis()) {
      // An expired certificate fails every handshake; without it the agent can still rotate its
      // key, which brings a new certificate.
      spdlog::warn("client certificate {}; connecting without it",
                   not_after.ok() ? "expired" : "unreadable");
      o.client_cert_pem.clear();
      return o;
    }
    auto key = state.KeyPem();
    if (!key.ok()) return key.status();
    o.client_key_pem = *key;
  }
  return o;
}

Agent::Agent(const v1::AgentConfig& config, const collectors::SystemView& view, const Clock& clock)
    : config_(config),
      view_(view),
      clock_(clock),
      state_(config.state_dir()),
      outbox_(state_.OutboxDir(), config.outbox_max_entries() ? config.outbox_max_entries()
                                                              : Outbox::kDefaultMaxEntries) {}

v1::Policy Agent::LocalPolicy() const {
  if (!config_.policy_file().empty()) {
    auto p = collectors::LoadPolicyFile(config_.policy_file());
    if (p.ok()) return *p;
    spdlog::warn("{}; judging with the server's last policy", p.status().message());
  }
  if (auto p = state_.LastPolicy()) return *p;
  return collectors::DefaultPolicy();
}

Status Agent::Enroll(Transport& transport, const std::string& enroll_secret) {
  if (Status s = state_.Prepare(); !s.ok()) return s;
  auto key = state_.LoadOrCreateKey();
  if (!key.ok()) return key.status();
  auto pem = key->ToPem();
  if (!pem.ok()) return pem.status();
  auto csr = pki::MakeCsr(*pem, "vigil-device");
  if (!csr.ok()) return csr.status();
  v1::EnrollRequest req;
  req.set_enroll_secret(enroll_secret);
  req.set_public_key(key->PublicKey());
  *req.mutable_platform() = collectors::CollectPlatform(view_);
  req.set_hostname(req.platform().hostname());
  req.set_csr(*csr);
  auto resp = transport.Enroll(req);
  if (!resp.ok()) return resp.status();
  if (!resp->client_certificate().empty()) {
    if (Status s = state_.SaveClientCertificate(resp->client_certificate()); !s.ok()) return s;
  }
  if (Status s = state_.SaveEnrollment(resp->device_id(), config_.server()); !s.ok()) return s;
  if (resp->has_policy()) (void)state_.SavePolicy(resp->policy());
  spdlog::info("enrolled as {}{}", resp->device_id(),
               resp->status() == v1::PENDING ? " (pending an admin's approval)" : "");
  return Status::Ok();
}

Result<v1::EnrollBundle> LoadBundle(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, path);
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied(path + " holds an enroll secret but others can read it; " +
                                    "chmod 600 " + path);
  }
  auto text = ReadWholeFile(path, 1u << 20);
  if (!text.ok()) return text.status();
  v1::EnrollBundle bundle;
  if (Status s = ParseJsonStrict(*text, &bundle, path); !s.ok()) return s;
  if (bundle.server().empty() || bundle.enroll_secret().empty()) {
    return Status::InvalidArgument(path + ": server and enrollSecret are required");
  }
  return bundle;
}

Status Agent::EnrollFromConfig() {
  std::string secret;
  if (!config_.bundle_file().empty()) {
    auto bundle = LoadBundle(config_.bundle_file());
    if (!bundle.ok()) return bundle.status();
    if (Status s = state_.Prepare(); !s.ok()) return s;
    if (!bundle->ca_certificate().empty()) {
      if (Status s = state_.SaveCaCertificate(bundle->ca_certificate()); !s.ok()) return s;
    }
    secret = bundle->enroll_secret();
  } else if (!config_.enroll_secret_file().empty()) {
    auto read = ReadSecretFile(config_.enroll_secret_file());
    if (!read.ok()) return read.status();
    secret = std::move(read).value();
  } else {
    return Status::NotFound("not enrolled, and neither bundleFile nor enrollSecretFile is set");
  }
  auto options = TransportOptionsFor(config_);
  if (!options.ok()) return options.status();
  auto transport = NewGrpcTransport(*options);
  return Enroll(*transport, secret);
}

Status Agent::ResignIfRotated(v1::SignedAttestation* entry,
                              std::optional<signing::DeviceKey>* key) const {
  if (!key->has_value()) {
    auto loaded = state_.LoadKey();
    if (!loaded.ok()) return loaded.status();
    key->emplace(std::move(loaded).value());
  }
  if (entry->key_id() == (*key)->KeyId()) return Status::Ok();
  // Queued before a key rotation: the server now knows only the new key. The bytes are the
  // device's own attestation, unchanged; only the signature is renewed (an identical resend
  // stays identical, since the server compares the attestation bytes).
  auto sig = (*key)->Sign(std::string(signing::kSignatureDomain) + entry->attestation());
  if (!sig.ok()) return sig.status();
  entry->set_signature(*sig);
  entry->set_key_id((*key)->KeyId());
  return Status::Ok();
}

bool Agent::RotationPending() const { return state_.HasNextKey(); }

bool Agent::CertificateNeedsRenewal() const {
  std::string pem = state_.ClientCertificate();
  if (pem.empty()) return false;  // this server does not issue certificates
  auto not_after = pki::CertNotAfter(pem);
  return !not_after.ok() || *not_after * 1000 - clock_.NowMillis() < kCertificateRenewalMs;
}

Status Agent::RotateKey(Transport& transport) {
  if (Status s = state_.Prepare(); !s.ok()) return s;
  auto device_id = state_.DeviceId();
  if (!device_id.ok()) return device_id.status();
  auto old_key = state_.LoadKey();
  if (!old_key.ok()) return old_key.status();
  auto next = state_.LoadOrCreateNextKey();
  if (!next.ok()) return next.status();
  v1::KeyRotation rot;
  rot.set_device_id(*device_id);
  rot.set_old_key_id(old_key->KeyId());
  rot.set_new_public_key(next->PublicKey());
  int64_t now = clock_.NowMillis();
  rot.mutable_issued_at()->set_seconds(now / 1000);
  v1::RotateKeyRequest req;
  req.set_rotation(rot.SerializeAsString());
  std::string signed_bytes = std::string(signing::kRotationDomain) + req.rotation();
  auto old_sig = old_key->Sign(signed_bytes);
  if (!old_sig.ok()) return old_sig.status();
  auto new_sig = next->Sign(signed_bytes);
  if (!new_sig.ok()) return new_sig.status();
  req.set_old_signature(*old_sig);
  req.set_new_signature(*new_sig);
  auto next_pem = next->ToPem();
  if (!next_pem.ok()) return next_pem.status();
  auto csr = pki::MakeCsr(*next_pem, "vigil-device");
  if (!csr.ok()) return csr.status();
  req.set_csr(*csr);
  auto resp = transport.RotateKey(req);
  if (!resp.ok()) {
    Status::Code c = resp.status().code();
    if (c != Status::Code::kUnavailable && c != Status::Code::kDeadlineExceeded &&
        c != Status::Code::kInternal && c != Status::Code::kResourceExhausted) {
      // Refused for good (bad signature, stale statement, revoked...): the server did not adopt
      // the new key, so drop it and keep working with the current one.
      spdlog::error("key rotation refused, keeping the current key: {}", resp.status().message());
      if (Status s = state_.DiscardNextKey(); !s.ok()) return s;
    }
    return resp.status();
  }
  if (Status s = state_.PromoteNextKey(resp->client_certificate()); !s.ok()) return s;
  spdlog::info("device key rotated (new key id {})", signing::Hex(next->KeyId()).substr(0, 16));
  return Status::Ok();
}

v1::Attestation BuildAttestation(const collectors::SystemView& view, const v1::Policy& policy,
                                 const Clock& clock) {
  v1::Attestation att;
  int64_t now = clock.NowMillis();
  att.mutable_issued_at()->set_seconds(now / 1000);
  att.mutable_issued_at()->set_nanos(static_cast<int32_t>((now % 1000) * 1000000));
  att.set_agent_version(kAgentVersion);
  *att.mutable_platform() = collectors::CollectPlatform(view);
  for (auto& c : collectors::CollectAll(view)) *att.add_checks() = std::move(c);
  att.set_policy_version(collectors::PolicyVersion(policy));
  collectors::EvaluateAll(policy, att.mutable_checks());
  return att;
}

v1::Attestation Agent::Collect(const std::string& device_id, uint64_t sequence) const {
  v1::Attestation att = BuildAttestation(view_, LocalPolicy(), clock_);
  att.set_device_id(device_id);
  att.set_sequence(sequence);
  return att;
}

v1::AgentHealth Agent::Health(size_t outbox_depth, uint64_t outbox_dropped, bool complete,
                              int64_t now_ms) const {
  v1::AgentHealth h;
  h.set_outbox_depth(static_cast<uint32_t>(outbox_depth));
  h.set_outbox_dropped(outbox_dropped);
  auto st = state_.LoadRunStatus();
  if (st.ok()) {
    h.set_last_report_ms(st->last_report_ms());
    h.set_report_failures(st->report_failures());
    // Errors quote paths and server messages: bytes, made UTF-8 before they are signed.
    h.set_last_error(
        TruncateUtf8(collectors::SanitizeUtf8(st->last_error()), kMaxHealthErrorBytes));
    h.set_last_complete_collection_ms(st->last_complete_collection_ms());
  }
  if (complete) h.set_last_complete_collection_ms(now_ms);
  return h;
}

void Agent::RecordRun(const std::function<void(v1::AgentRunStatus*)>& update) {
  auto st = state_.LoadRunStatus();
  v1::AgentRunStatus status = st.ok() ? *st : v1::AgentRunStatus();
  update(&status);
  if (Status s = state_.SaveRunStatus(status); !s.ok()) {
    spdlog::debug("cannot record the run status: {}", s.message());
  }
}

void Agent::NoteNextRun(int64_t next_run_ms) {
  RecordRun([&](v1::AgentRunStatus* st) { st->set_next_run_ms(next_run_ms); });
}

Result<uint64_t> Agent::CollectAndQueue() {
  bool complete = false;
  auto seq = CollectAndQueueImpl(&complete);
  const int64_t now = clock_.NowMillis();
  RecordRun([&](v1::AgentRunStatus* st) {
    if (seq.ok()) {
      st->set_last_collection_ms(now);
      if (complete) st->set_last_complete_collection_ms(now);
    } else {
      st->set_last_error("collection: " + seq.status().message());
    }
  });
  return seq;
}

Result<FlushStats> Agent::Flush(Transport& transport) {
  auto stats = FlushImpl(transport);
  const int64_t now = clock_.NowMillis();
  RecordRun([&](v1::AgentRunStatus* st) {
    st->set_last_attempt_ms(now);
    if (stats.ok()) {
      st->set_last_report_ms(now);
      st->set_report_failures(0);
      st->clear_last_error();
    } else {
      st->set_report_failures(st->report_failures() + 1);
      st->set_last_error("report: " + stats.status().message());
    }
  });
  return stats;
}

Result<uint64_t> Agent::CollectAndQueueImpl(bool* complete) {
  if (Status s = state_.Prepare(); !s.ok()) return s;
  auto device_id = state_.DeviceId();
  if (!device_id.ok()) return device_id.status();
  if (state_.HasNextKey()) {
    // The server may already know only the new key; signing with the old one now would look
    // like a forgery. Finish the rotation first.
    return Status::FailedPrecondition(
        "a key rotation is in progress; run vigil-agent rotate-key to finish it");
  }
  auto key = state_.LoadKey();
  if (!key.ok()) return key.status();
  // Reserve the sequence first: a crash after this point skips a number, never reuses one.
  auto seq = state_.NextSequence();
  if (!seq.ok()) return seq.status();
  v1::Attestation att = Collect(*device_id, *seq);
  // The agent's own health travels signed with the evidence, counting what this one's arrival
  // drops from a full outbox.
  std::set<std::string> checks;
  for (const auto& c : att.checks()) checks.insert(c.check());
  if (Status s = outbox_.MakeRoom(checks); !s.ok()) return s;
  auto pending = outbox_.Pending();
  if (!pending.ok()) return pending.status();
  auto dropped = outbox_.Dropped();
  if (!dropped.ok()) return dropped.status();
  *complete = std::none_of(att.checks().begin(), att.checks().end(),
                           [](const v1::CheckResult& c) { return c.status() == v1::ERROR; });
  *att.mutable_agent_health() = Health(pending->size(), *dropped, *complete, clock_.NowMillis());
  auto signed_att = signing::SignAttestation(att, *key);
  if (!signed_att.ok()) return signed_att.status();
  if (Status s = outbox_.Put(*seq, *signed_att); !s.ok()) return s;
  return *seq;
}

Result<FlushStats> Agent::FlushImpl(Transport& transport) {
  FlushStats stats;
  auto pending = outbox_.Pending();
  if (!pending.ok()) return pending.status();
  std::optional<signing::DeviceKey> key;  // loaded only when an entry needs re-signing
  size_t i = 0;
  while (i < pending->size()) {
    v1::ReportRequest req;
    std::vector<uint64_t> batch;
    for (; i < pending->size() && batch.size() < config_.max_batch(); ++i) {
      auto loaded = outbox_.Load((*pending)[i]);
      if (!loaded.ok()) {
        // Only a file that can never be sent is set aside; a transient read error is retried.
        if (loaded.status().code() != Status::Code::kCorruption) return loaded.status();
        spdlog::error("outbox: {}", loaded.status().message());
        if (Status s = outbox_.Reject((*pending)[i], loaded.status().message()); !s.ok()) return s;
        ++stats.rejected;
        continue;
      }
      v1::SignedAttestation entry = std::move(loaded).value();
      if (Status s = ResignIfRotated(&entry, &key); !s.ok()) return s;
      *req.add_attestations() = std::move(entry);
      batch.push_back((*pending)[i]);
    }
    if (batch.empty()) continue;
    auto resp = transport.Report(req);
    if (!resp.ok()) {
      stats.remaining = pending->size() - (i - batch.size());
      return Status(resp.status());
    }
    if (resp->acks_size() != static_cast<int>(batch.size())) {
      stats.remaining = pending->size() - (i - batch.size());
      return Status::Internal("server answered " + std::to_string(resp->acks_size()) +
                              " acknowledgements for " + std::to_string(batch.size()) +
                              " attestations; keeping them queued");
    }
    for (size_t k = 0; k < batch.size(); ++k) {
      const auto& ack = resp->acks(static_cast<int>(k));
      if (ack.code() == 0 || ack.code() == 6 /* ALREADY_EXISTS: stored before */) {
        if (Status s = outbox_.Acknowledge(batch[k]); !s.ok()) return s;
        ++stats.acknowledged;
      } else if (ack.code() == 8 || ack.code() == 9 || ack.code() == 13 || ack.code() == 14) {
        // RESOURCE_EXHAUSTED (rate limit), FAILED_PRECONDITION (waiting for approval),
        // INTERNAL / UNAVAILABLE on the server side: transient, keep it and retry later.
        spdlog::warn("attestation {} not stored yet: {}", batch[k], ack.message());
        stats.remaining = pending->size() - (i - batch.size()) - k;
        return Status::Unavailable("server could not store attestation " +
                                   std::to_string(batch[k]) + ": " + ack.message());
      } else {
        spdlog::error("attestation {} rejected by the server (code {}): {}", batch[k], ack.code(),
                      ack.message());
        if (Status s = outbox_.Reject(batch[k], ack.message()); !s.ok()) return s;
        ++stats.rejected;
      }
    }
    // Every response names the device's policy version; the policy itself comes only when the
    // agent judged with another one, and the next collection is judged with it.
    if (resp->has_policy()) {
      if (Status s = state_.SavePolicy(resp->policy()); !s.ok()) {
        spdlog::warn("cannot save policy {}: {}", resp->policy_version(), s.message());
      } else {
        spdlog::info("policy {} from the server", resp->policy_version());
      }
    }
  }
  return stats;
}

}  // namespace vigil::agent

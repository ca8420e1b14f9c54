#include "server/aggregator.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "collectors/evaluate.h"
#include "collectors/policy.h"
#include "proto/signing.h"

namespace vigil::server {
namespace {

bool SecretMatches(const std::string& expected, const std::string& given) {
  // Compare digests so the comparison is constant-time regardless of the lengths.
  std::string a = signing::Sha256(expected), b = signing::Sha256(given);
  return !expected.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Device-signed times are untrusted: clamp to years 0..9999 so arithmetic cannot overflow.
int64_t ToMillis(const google::protobuf::Timestamp& t) {
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  int64_t secs = std::clamp<int64_t>(t.seconds(), 0, kMaxSeconds);
  return secs * 1000 + std::clamp<int32_t>(t.nanos(), 0, 999999999) / 1000000;
}

}  // namespace

bool IsValidCheckId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char ch : id) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return false;
  }
  return true;
}

Aggregator::Aggregator(Store& store, const Clock& clock, v1::Policy policy,
                       AggregatorOptions options)
    : store_(store),
      clock_(clock),
      policy_(std::move(policy)),
      policy_version_(collectors::PolicyVersion(policy_)),
      options_(std::move(options)) {}

Result<v1::EnrollResponse> Aggregator::Enroll(const v1::EnrollRequest& req) {
  if (!SecretMatches(options_.enroll_secret, req.enroll_secret())) {
    spdlog::warn("enrollment rejected: wrong enroll secret (host '{}')", req.hostname());
    return Status::PermissionDenied("invalid enroll secret");
  }
  if (req.public_key().size() != signing::kPublicKeySize) {
    return Status::InvalidArgument("public_key must be a raw 32-byte Ed25519 key");
  }
  if (req.hostname().size() > 255) return Status::InvalidArgument("hostname longer than 255 bytes");
  std::string key_id = signing::KeyIdOf(req.public_key());
  v1::EnrollResponse resp;
  *resp.mutable_policy() = policy_;
  std::lock_guard<std::mutex> lock(ingest_mu_);
  auto existing = store_.FindDeviceByKeyId(key_id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    resp.set_device_id((*existing)->id);  // same key enrolling again: same device
    return resp;
  }
  DeviceRecord d;
  d.id = "dev-" + signing::Hex(key_id).substr(0, 20);
  d.key_id = key_id;
  d.public_key = req.public_key();
  d.hostname = req.hostname();
  d.platform = req.platform();
  d.enrolled_at_ms = clock_.NowMillis();
  d.status = v1::UNKNOWN;
  if (Status s = store_.InsertDevice(d); !s.ok()) return s;
  spdlog::info("enrolled device {} (host '{}')", d.id, d.hostname);
  resp.set_device_id(d.id);
  return resp;
}

Result<v1::ReportResponse> Aggregator::Report(const v1::ReportRequest& req) {
  if (req.attestations_size() == 0)
    return Status::InvalidArgument("report carries no attestations");
  if (static_cast<uint32_t>(req.attestations_size()) > options_.max_batch) {
    return Status::InvalidArgument("report carries " + std::to_string(req.attestations_size()) +
                                   " attestations; the limit is " +
                                   std::to_string(options_.max_batch));
  }
  v1::ReportResponse resp;
  bool stopped = false;
  for (const auto& signed_att : req.attestations()) {
    if (stopped) {
      // After a server-side failure nothing later in the batch is committed: committing a later
      // sequence would make the agent's retry of the failed one look like a replay.
      auto* ack = resp.add_acks();
      ack->set_code(kAckInternal);
      ack->set_message("not processed: an earlier attestation in this batch could not be stored");
      continue;
    }
    *resp.add_acks() = Ingest(signed_att);
    stopped = resp.acks(resp.acks_size() - 1).code() == kAckInternal;
  }
  *resp.mutable_policy() = policy_;
  return resp;
}

v1::AttestationAck Aggregator::Reject(const std::string& device_id, int32_t code,
                                      const std::string& message, bool tamper) {
  v1::AttestationAck ack;
  ack.set_code(code);
  ack.set_message(message);
  if (tamper && !device_id.empty()) {
    spdlog::warn("device {} flagged TAMPERED: {}", device_id, message);
    if (Status s = store_.MarkTampered(device_id, message, clock_.NowMillis()); !s.ok()) {
      spdlog::error("cannot flag device {}: {}", device_id, s.ToString());
    }
    ack.set_device_status(v1::TAMPERED);
  } else {
    spdlog::warn("attestation rejected: {}", message);
  }
  return ack;
}

v1::AttestationAck Aggregator::Ingest(const v1::SignedAttestation& signed_att) {
  if (signed_att.key_id().size() != 32) {
    return Reject("", kAckInvalidArgument, "key_id must be 32 bytes (SHA-256 of the public key)",
                  false);
  }
  if (signed_att.attestation().size() > options_.max_attestation_bytes) {
    return Reject("", kAckInvalidArgument, "attestation larger than the limit", false);
  }
  std::lock_guard<std::mutex> lock(ingest_mu_);
  auto found = store_.FindDeviceByKeyId(signed_att.key_id());
  if (!found.ok()) return Reject("", kAckInternal, found.status().ToString(), false);
  if (!found->has_value()) {
    // Nobody enrolled this key. If the bytes claim to come from a known device, someone is
    // forging reports for it: flag that device so the security team looks.
    v1::Attestation claimed;
    std::string victim;
    if (claimed.ParseFromString(signed_att.attestation()) && !claimed.device_id().empty()) {
      auto d = store_.GetDevice(claimed.device_id());
      if (d.ok() && d->has_value()) victim = (*d)->id;
    }
    return Reject(victim, kAckUnauthenticated,
                  "attestation signed by an unknown key (not enrolled)", !victim.empty());
  }
  DeviceRecord device = std::move(**found);
  auto verified = signing::VerifyAttestation(signed_att, device.public_key);
  if (!verified.ok()) {
    if (verified.status().code() == Status::Code::kInvalidArgument) {
      return Reject(device.id, kAckInvalidArgument, verified.status().message(), true);
    }
    return Reject(device.id, kAckPermissionDenied,
                  "signature does not verify with the device's enrolled key", true);
  }
  v1::Attestation att = std::move(verified).value();
  v1::AttestationAck ack;
  ack.set_sequence(att.sequence());
  if (att.device_id() != device.id) {
    ack = Reject(
        device.id, kAckPermissionDenied,
        "attestation for device '" + att.device_id() + "' signed with the key of " + device.id,
        true);
    ack.set_sequence(att.sequence());
    return ack;
  }
  if (att.sequence() == 0) {
    ack = Reject(device.id, kAckInvalidArgument, "sequence must start at 1", false);
    return ack;
  }
  std::string digest = signing::Sha256(signed_att.attestation());
  if (att.sequence() <= device.last_sequence) {
    auto stored = store_.AttestationDigest(device.id, att.sequence());
    if (!stored.ok()) return Reject("", kAckInternal, stored.status().ToString(), false);
    if (stored->has_value() && **stored == digest) {
      // The agent lost our acknowledgement and sent the same bytes again: acknowledge again.
      ack.set_code(kAckAlreadyExists);
      ack.set_message("already stored");
      ack.set_device_status(device.tampered ? v1::TAMPERED : device.status);
      return ack;
    }
    ack = Reject(device.id, kAckPermissionDenied,
                 "replay: sequence " + std::to_string(att.sequence()) +
                     (stored->has_value() ? " was already used by a different attestation"
                                          : " is not newer than the last accepted " +
                                                std::to_string(device.last_sequence)),
                 true);
    ack.set_sequence(att.sequence());
    return ack;
  }

  AcceptedAttestation accepted;
  accepted.device_id = device.id;
  accepted.sequence = att.sequence();
  accepted.digest = digest;
  accepted.issued_at_ms = ToMillis(att.issued_at());
  accepted.received_at_ms = clock_.NowMillis();
  accepted.envelope = signed_att;
  device.last_seen_ms = accepted.received_at_ms;
  device.last_sequence = att.sequence();
  device.platform = att.platform();
  if (!att.platform().hostname().empty()) device.hostname = att.platform().hostname();
  ApplyVerdicts(policy_, &att, &device);
  device.policy_version = policy_version_;
  att.SerializeToString(&device.latest_attestation);
  accepted.device_after = device;
  if (Status s = store_.CommitAttestation(accepted); !s.ok()) {
    spdlog::error("cannot store attestation {} of {}: {}", att.sequence(), device.id, s.ToString());
    ack.set_code(kAckInternal);
    ack.set_message("not stored: " + s.message());
    return ack;
  }
  ack.set_code(kAckOk);
  ack.set_device_status(device.tampered ? v1::TAMPERED : device.status);
  return ack;
}

void Aggregator::ApplyVerdicts(const v1::Policy& policy, v1::Attestation* att,
                               DeviceRecord* device) {
  collectors::EvaluateAll(policy, att->mutable_checks());
  att->set_policy_version(collectors::PolicyVersion(policy));
  device->failing_checks.clear();
  std::string reason;
  for (auto& c : *att->mutable_checks()) {
    if (!IsValidCheckId(c.check())) {
      // Check ids come from the device; keep them to the documented shape so they can never
      // confuse storage or filters. An unknown id is already ERROR.
      c.set_check("invalid_check_id");
    }
    if (c.status() == v1::FAIL || c.status() == v1::ERROR) {
      device->failing_checks.push_back(c.check());
      if (!reason.empty()) reason += "; ";
      reason += c.check() + " " + v1::CheckStatus_Name(c.status()) + ": " + c.reason();
    }
  }
  // A device that reports no checks at all proves nothing.
  if (att->checks_size() == 0) reason = "the attestation carries no checks";
  device->status = reason.empty() ? v1::COMPLIANT : v1::NON_COMPLIANT;
  device->status_reason = reason.empty() ? "all checks pass" : reason;
}

Status Aggregator::ReevaluateFleet() {
  DeviceFilter f;
  f.limit = 1000;
  size_t changed = 0;
  for (;;) {
    auto page = store_.ListDevices(f);
    if (!page.ok()) return page.status();
    for (const auto& summary : *page) {
      if (summary.last_seen_ms == 0 || summary.policy_version == policy_version_) continue;
      auto full = store_.GetDevice(summary.id);
      if (!full.ok()) return full.status();
      if (!full->has_value()) continue;
      DeviceRecord d = std::move(**full);
      v1::Attestation att;
      if (!att.ParseFromString(d.latest_attestation)) continue;
      ApplyVerdicts(policy_, &att, &d);
      d.policy_version = policy_version_;
      att.SerializeToString(&d.latest_attestation);
      if (Status s = store_.UpdateVerdict(d); !s.ok()) return s;
      ++changed;
    }
    if (page->size() < f.limit) break;
    f.after_id = page->back().id;
  }
  if (changed > 0)
    spdlog::info("re-evaluated {} devices under policy {}", changed, policy_version_);
  return Status::Ok();
}

}  // namespace vigil::server

// The agent's state directory (mode 0700, owned by the agent's user):
//   device.key   Ed25519 private key, PKCS#8 PEM, mode 0600 (refused if looser)
//   device.key.next  the new key while a rotation waits for the server's confirmation
//   device.crt   client certificate for mutual TLS, issued by the server at enrollment
//   ca.crt       the server's CA certificate (from the enrollment bundle)
//   device.json  {"deviceId": ..., "server": ...} written after enrollment
//   sequence     the last sequence number used; persisted BEFORE an attestation is signed, so a
//                crash can skip a number but never reuse one
//   policy.pb    the last policy the server sent (for advisory local verdicts)
//   status.json  what the agent last did (AgentRunStatus), for `vigil-agent status`
//   outbox/      signed attestations waiting for acknowledgement (see outbox.h)
// Not thread-safe: one agent process owns a state directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "proto/signing.h"
#include "vigil/v1/config.pb.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::agent {

class StateDir {
 public:
  explicit StateDir(std::string path) : path_(std::move(path)) {}
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  ~StateDir();

  // Creates the directory (0700) when missing; refuses one that others can read or write.
  // Takes an exclusive lock on <dir>/lock held until the process exits, so a second agent
  // process (e.g. `once` next to the daemon) cannot reserve the same sequence number.
  Status Prepare() const;
  // Loads the device key, creating it (0600) when missing. A key readable by others is refused.
  Result<signing::DeviceKey> LoadOrCreateKey() const;
  Result<signing::DeviceKey> LoadKey() const;

  // Key rotation in progress: the next key (device.key.next, 0600), created when missing.
  Result<signing::DeviceKey> LoadOrCreateNextKey() const;
  bool HasNextKey() const;
  // Makes the next key the device key (atomic rename) with its client certificate, if any.
  Status PromoteNextKey(const std::string& client_cert_pem) const;
  // Completes a promotion interrupted between the key's rename and the certificate's.
  Status FinishPromotion() const;
  // Forgets a rotation the server refused for good (the server never adopted that key).
  Status DiscardNextKey() const;

  // PEM files kept beside the key: the server's CA (from the enrollment bundle) and the client
  // certificate issued at enrollment. Empty when absent.
  std::string CaCertificate() const;
  std::string ClientCertificate() const;
  Status SaveCaCertificate(const std::string& pem) const;
  Status SaveClientCertificate(const std::string& pem) const;
  Result<std::string> KeyPem() const;

  Result<std::string> DeviceId() const;        // NotFound when not enrolled
  Result<std::string> EnrolledServer() const;  // the server recorded at enrollment
  Status SaveEnrollment(const std::string& device_id, const std::string& server) const;

  // Reserves the next sequence number durably and returns it.
  Result<uint64_t> NextSequence() const;

  std::optional<v1::Policy> LastPolicy() const;
  Status SavePolicy(const v1::Policy& policy) const;
  // The run status; an empty one when none was written yet.
  Result<v1::AgentRunStatus> LoadRunStatus() const;
  Status SaveRunStatus(const v1::AgentRunStatus& status) const;

  const std::string& path() const { return path_; }
  std::string OutboxDir() const { return path_ + "/outbox"; }

 private:
  Status Lock() const;

  std::string path_;
  mutable int lock_fd_ = -1;
};

}  // namespace vigil::agent

// The durable outbox: one file per signed attestation, named by its zero-padded sequence so the
// directory order is the send order. An attestation is written (fsync'd) before any send and
// removed only after the server acknowledged it; a rejected one is moved to outbox/rejected/
// with the server's reason, never silently dropped. Not thread-safe (one agent per state dir).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "vigil/v1/attestation.pb.h"

namespace vigil::agent {

class Outbox {
 public:
  static constexpr size_t kMaxEntries = 10000;

  explicit Outbox(std::string dir) : dir_(std::move(dir)) {}

  Status Put(uint64_t sequence, const v1::SignedAttestation& signed_att) const;
  // Sequences waiting, oldest first.
  Result<std::vector<uint64_t>> Pending() const;
  Result<v1::SignedAttestation> Load(uint64_t sequence) const;
  Status Acknowledge(uint64_t sequence) const;
  Status Reject(uint64_t sequence, const std::string& reason) const;

 private:
  std::string PathOf(uint64_t sequence) const;
  std::string dir_;
};

}  // namespace vigil::agent

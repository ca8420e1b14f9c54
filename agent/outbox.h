// The durable outbox: one file per signed attestation, named by its zero-padded sequence so the
// directory order is the send order. An attestation is written (fsync'd) before any send and
// removed only after the server acknowledged it; a rejected one is moved to outbox/rejected/
// with the server's reason, never silently dropped. Not thread-safe (one agent per state dir).
//
// Bounded: at `max_entries`, putting one more first drops the oldest entries whose every check
// a newer entry also carries (so the latest evidence of each check always stays), then, if that
// is not enough, the oldest ones. Drops are counted in outbox/dropped, durably, and the agent
// reports the count in its attestations (AgentHealth).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "vigil/v1/attestation.pb.h"

namespace vigil::agent {

class Outbox {
 public:
  static constexpr size_t kDefaultMaxEntries = 10000;

  explicit Outbox(std::string dir, size_t max_entries = kDefaultMaxEntries)
      : dir_(std::move(dir)), max_entries_(max_entries) {}

  Status Put(uint64_t sequence, const v1::SignedAttestation& signed_att) const;
  // Makes room for one more entry carrying `checks` (Put does it too): call it before signing,
  // so the new attestation's AgentHealth already counts what its arrival dropped.
  Status MakeRoom(const std::set<std::string>& checks) const;
  // Attestations ever dropped from this outbox when it was full.
  Result<uint64_t> Dropped() const;
  // Sequences waiting, oldest first.
  Result<std::vector<uint64_t>> Pending() const;
  Result<v1::SignedAttestation> Load(uint64_t sequence) const;
  Status Acknowledge(uint64_t sequence) const;
  Status Reject(uint64_t sequence, const std::string& reason) const;

 private:
  std::string PathOf(uint64_t sequence) const;
  // Drops `count` entries of `pending` (oldest first, as described above) to make room for an
  // entry carrying `incoming` checks.
  Status Compact(const std::vector<uint64_t>& pending, size_t count,
                 std::set<std::string> incoming) const;
  std::string dir_;
  size_t max_entries_;
};

}  // namespace vigil::agent

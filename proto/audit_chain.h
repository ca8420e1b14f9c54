// The audit log's hash chain, shared by the server (which appends) and vigilctl (which verifies
// independently of the server).
//
// hash(entry) = SHA-256("vigil.audit.v1\0" || prev_hash || be64(id) || be64(at_ms) ||
//                       lp(actor) || lp(action) || lp(target) || lp(detail) || u8(success))
// where lp(s) is a big-endian 32-bit length followed by the bytes. The first entry's prev_hash is
// 32 zero bytes. Editing, inserting or deleting any stored entry breaks every hash after it; a
// verifier that also remembers the last head hash detects truncation at the end.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::audit {

inline constexpr size_t kHashSize = 32;

// The hash of `entry` from its fields and prev_hash (entry.hash is ignored).
std::string EntryHash(const v1::AuditEntry& entry);

struct ChainCheck {
  uint64_t checked = 0;
  std::string head;  // hash of the last entry checked
};

// Verifies a run of entries in id order. `prev_hash` is the hash the first entry must chain to
// (32 zero bytes when the run starts at the beginning of the log). Corruption names the first
// entry that does not verify and why.
Result<ChainCheck> VerifyChain(const std::vector<v1::AuditEntry>& entries, std::string prev_hash);

}  // namespace vigil::audit

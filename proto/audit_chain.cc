#include "proto/audit_chain.h"

#include "proto/signing.h"

namespace vigil::audit {
namespace {

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

void PutString(std::string* out, const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>((n >> (i * 8)) & 0xff));
  out->append(s);
}

}  // namespace

std::string EntryHash(const v1::AuditEntry& e) {
  std::string m("vigil.audit.v1\0", 15);
  m.append(e.prev_hash());
  PutU64(&m, e.id());
  PutU64(&m, static_cast<uint64_t>(e.at_ms()));
  PutString(&m, e.actor());
  PutString(&m, e.action());
  PutString(&m, e.target());
  PutString(&m, e.detail());
  m.push_back(e.success() ? 1 : 0);
  return signing::Sha256(m);
}

Result<ChainCheck> VerifyChain(const std::vector<v1::AuditEntry>& entries, std::string prev_hash) {
  ChainCheck check;
  check.head = prev_hash;
  uint64_t last_id = 0;
  for (const auto& e : entries) {
    std::string where = "audit entry " + std::to_string(e.id());
    if (check.checked > 0 && e.id() != last_id + 1) {
      return Status::Corruption(where + ": follows entry " + std::to_string(last_id) +
                                " (entries were deleted or reordered)");
    }
    if (e.prev_hash() != check.head) {
      return Status::Corruption(where + ": does not chain to the previous entry's hash " +
                                "(an earlier entry was edited, inserted or deleted)");
    }
    if (e.hash() != EntryHash(e)) {
      return Status::Corruption(where + ": stored hash does not match its contents (edited)");
    }
    check.head = e.hash();
    last_id = e.id();
    ++check.checked;
  }
  return check;
}

}  // namespace vigil::audit

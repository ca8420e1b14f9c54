#include "proto/audit_chain.h"

#include <doctest/doctest.h>

namespace vigil::audit {
namespace {

std::vector<v1::AuditEntry> Chain(int n) {
  std::vector<v1::AuditEntry> out;
  std::string prev(kHashSize, '\0');
  for (int i = 1; i <= n; ++i) {
    v1::AuditEntry e;
    e.set_id(static_cast<uint64_t>(i));
    e.set_at_ms(1000 * i);
    e.set_actor("token:ada (admin)");
    e.set_action("device.revoke");
    e.set_target("dev-" + std::to_string(i));
    e.set_detail("lost");
    e.set_success(true);
    e.set_prev_hash(prev);
    e.set_hash(EntryHash(e));
    prev = e.hash();
    out.push_back(e);
  }
  return out;
}

TEST_CASE("audit chain: an intact chain verifies and reports its head") {
  auto chain = Chain(5);
  auto r = VerifyChain(chain, std::string(kHashSize, '\0'));
  REQUIRE(r.ok());
  CHECK(r->checked == 5);
  CHECK(r->head == chain.back().hash());
  // A run from the middle verifies against the hash before it.
  std::vector<v1::AuditEntry> tail(chain.begin() + 2, chain.end());
  CHECK(VerifyChain(tail, chain[1].hash()).ok());
  CHECK(!VerifyChain(tail, std::string(kHashSize, '\0')).ok());
}

TEST_CASE("audit chain: every field is covered, and edits, deletions and reorders are caught") {
  using Edit = void (*)(v1::AuditEntry*);
  const Edit edits[] = {
      [](v1::AuditEntry* e) { e->set_at_ms(e->at_ms() + 1); },
      [](v1::AuditEntry* e) { e->set_actor("cli:uid 0"); },
      [](v1::AuditEntry* e) { e->set_action("device.approve"); },
      [](v1::AuditEntry* e) { e->set_target("dev-x"); },
      [](v1::AuditEntry* e) { e->set_detail("routine"); },
      [](v1::AuditEntry* e) { e->set_success(false); },
      // Length prefixes: moving bytes between adjacent fields changes the hash.
      [](v1::AuditEntry* e) {
        e->set_target(e->target() + "l");
        e->set_detail("ost");
      },
  };
  for (Edit edit : edits) {
    auto chain = Chain(4);
    edit(&chain[2]);
    auto r = VerifyChain(chain, std::string(kHashSize, '\0'));
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Status::Code::kCorruption);
    CHECK(r.status().message().find("audit entry 3") != std::string::npos);
  }
  // Re-hashing the edited entry does not help: the next one no longer chains to it.
  auto chain = Chain(4);
  chain[1].set_detail("routine");
  chain[1].set_hash(EntryHash(chain[1]));
  auto r = VerifyChain(chain, std::string(kHashSize, '\0'));
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("audit entry 3") != std::string::npos);

  chain = Chain(4);
  chain.erase(chain.begin() + 1);
  r = VerifyChain(chain, std::string(kHashSize, '\0'));
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("deleted") != std::string::npos);
  chain = Chain(4);
  std::swap(chain[1], chain[2]);
  CHECK(!VerifyChain(chain, std::string(kHashSize, '\0')).ok());
}

}  // namespace
}  // namespace vigil::audit

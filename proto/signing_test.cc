#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "proto/signing.h"

#include <doctest/doctest.h>

namespace vigil::signing {
namespace {

v1::Attestation Sample() {
  v1::Attestation a;
  a.set_device_id("dev-1");
  a.set_sequence(7);
  a.mutable_issued_at()->set_seconds(1700000000);
  auto* c = a.add_checks();
  c->set_check("screen_lock");
  c->set_status(v1::PASS);
  return a;
}

TEST_CASE("a signed attestation verifies and parses back") {
  auto key = DeviceKey::Generate();
  REQUIRE(key.ok());
  auto s = SignAttestation(Sample(), *key);
  REQUIRE(s.ok());
  CHECK(s->key_id() == Sha256(key->PublicKey()));
  auto v = VerifyAttestation(*s, key->PublicKey());
  REQUIRE(v.ok());
  CHECK(v->sequence() == 7);
  CHECK(v->device_id() == "dev-1");
}

TEST_CASE("PEM round trip keeps the same key") {
  auto key = DeviceKey::Generate();
  REQUIRE(key.ok());
  auto pem = key->ToPem();
  REQUIRE(pem.ok());
  auto again = DeviceKey::FromPem(*pem);
  REQUIRE(again.ok());
  CHECK(again->PublicKey() == key->PublicKey());
  CHECK(!DeviceKey::FromPem("not a key").ok());
}

TEST_CASE("every tampering is rejected") {
  auto key = DeviceKey::Generate();
  auto other = DeviceKey::Generate();
  REQUIRE(key.ok());
  REQUIRE(other.ok());
  auto s = SignAttestation(Sample(), *key);
  REQUIRE(s.ok());

  SUBCASE("one flipped bit in the attestation bytes") {
    auto t = *s;
    (*t.mutable_attestation())[3] ^= 1;
    CHECK(VerifyAttestation(t, key->PublicKey()).status().code() ==
          Status::Code::kPermissionDenied);
  }
  SUBCASE("one flipped bit in the signature") {
    auto t = *s;
    (*t.mutable_signature())[10] ^= 0x40;
    CHECK(!VerifyAttestation(t, key->PublicKey()).ok());
  }
  SUBCASE("truncated or empty signature") {
    auto t = *s;
    t.mutable_signature()->resize(63);
    CHECK(!VerifyAttestation(t, key->PublicKey()).ok());
    t.clear_signature();
    CHECK(!VerifyAttestation(t, key->PublicKey()).ok());
  }
  SUBCASE("signed by another key but claiming this key id") {
    auto t = SignAttestation(Sample(), *other);
    REQUIRE(t.ok());
    t->set_key_id(key->KeyId());
    CHECK(!VerifyAttestation(*t, key->PublicKey()).ok());
  }
  SUBCASE("key id of another key") {
    auto t = *s;
    t.set_key_id(other->KeyId());
    CHECK(!VerifyAttestation(t, key->PublicKey()).ok());
  }
  SUBCASE("a signature over the bytes without the domain prefix") {
    auto t = *s;
    auto raw_sig = key->Sign(t.attestation());
    REQUIRE(raw_sig.ok());
    t.set_signature(*raw_sig);
    CHECK(!VerifyAttestation(t, key->PublicKey()).ok());
  }
  SUBCASE("a malformed public key") { CHECK(!Verify("short", "m", std::string(64, 'x')).ok()); }
  SUBCASE("a non-canonical signature (S + L, the same point for a lax verifier)") {
    std::string msg = std::string(kSignatureDomain) + s->attestation();
    std::string sig = s->signature();
    REQUIRE(Verify(key->PublicKey(), msg, sig).ok());
    // L, the order of the base point, little-endian.
    const unsigned char l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                 0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                 0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
    unsigned carry = 0;
    for (size_t i = 0; i < 32; ++i) {
      unsigned v = static_cast<unsigned char>(sig[32 + i]) + l[i] + carry;
      sig[32 + i] = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
    CHECK(Verify(key->PublicKey(), msg, sig).code() == Status::Code::kPermissionDenied);
  }
  SUBCASE("a small-order key with the signature that fits every message") {
    // A = identity, R = identity, S = 0 satisfies [S]B = R + [k]A for any message under plain
    // cofactorless verification; it must never verify.
    std::string identity(32, '\0');
    identity[0] = 1;
    std::string sig = identity + std::string(32, '\0');
    CHECK(Verify(identity, "any message", sig).code() == Status::Code::kPermissionDenied);
    CHECK(Verify(identity, "another one", sig).code() == Status::Code::kPermissionDenied);
  }
}

}  // namespace
}  // namespace vigil::signing

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
}

}  // namespace
}  // namespace vigil::signing

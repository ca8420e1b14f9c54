// IsValidUtf8 / SanitizeUtf8 on the edge cases of the UTF-8 definition, SanitizeStrings over
// nested messages, and end to end: evidence holding bytes that are not UTF-8 (a user's own KDE
// setting, login.defs) is collected, signed and then verified and parsed as the server does.
#include "collectors/utf8.h"

#include <doctest/doctest.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/stubs/logging.h>

#include <string>

#include "collectors/collectors.h"
#include "proto/signing.h"
#include "vigil/v1/agent_service.pb.h"

namespace vigil::collectors {
namespace {

using namespace std::string_literals;

// Whether protobuf itself accepts `s` in a proto3 string field: the bytes of a StringFact with
// `s` as its value (field 1, length-delimited), parsed.
bool ProtobufAccepts(const std::string& s) {
  REQUIRE(s.size() < 128);  // a one-byte length
  std::string wire = "\x0a"s + static_cast<char>(s.size()) + s;
  google::protobuf::LogSilencer quiet;  // it logs each string it refuses
  v1::StringFact fact;
  return fact.ParseFromString(wire);
}

struct Case {
  const char* what;
  std::string in;
  std::string sanitized;  // equal to `in` when it is valid
};

const Case kCases[] = {
    {"empty", "", ""},
    {"ASCII with a NUL and controls", "a\0b\t\x1b"s, "a\0b\t\x1b"s},
    {"two-byte U+00E9", "caf\xc3\xa9", "caf\xc3\xa9"},
    {"three-byte U+20AC", "\xe2\x82\xac", "\xe2\x82\xac"},
    {"last before the surrogates U+D7FF", "\xed\x9f\xbf", "\xed\x9f\xbf"},
    {"first after the surrogates U+E000", "\xee\x80\x80", "\xee\x80\x80"},
    {"four-byte U+1D11E", "\xf0\x9d\x84\x9e", "\xf0\x9d\x84\x9e"},
    {"last code point U+10FFFF", "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},
    {"a literal backslash escape stays text", "\\xff", "\\xff"},
    {"one 0xFF", "False\xff", "False\\xff"},
    {"0xFE and 0xFF stay distinct", "\xfe\xff", "\\xfe\\xff"},
    {"lone continuation byte", "a\x80z", "a\\x80z"},
    {"overlong '/' in two bytes", "\xc0\xaf", "\\xc0\\xaf"},
    {"overlong C1 lead", "\xc1\xbf", "\\xc1\\xbf"},
    {"overlong '/' in three bytes", "\xe0\x80\xaf", "\\xe0\\x80\\xaf"},
    {"overlong U+FFFF in four bytes", "\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf"},
    {"high surrogate U+D800", "\xed\xa0\x80", "\\xed\\xa0\\x80"},
    {"low surrogate U+DFFF", "\xed\xbf\xbf", "\\xed\\xbf\\xbf"},
    {"beyond U+10FFFF", "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},
    {"lead byte F5", "\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80"},
    {"two-byte sequence truncated at the end", "ok\xc3", "ok\\xc3"},
    {"three-byte sequence truncated at the end", "\xe2\x82", "\\xe2\\x82"},
    {"four-byte sequence truncated at the end", "\xf0\x9d\x84", "\\xf0\\x9d\\x84"},
    // The next byte after a broken sequence gets its own chance to start a valid one.
    {"truncated sequence before ASCII 'A'", "\xe2\x82\x41", "\\xe2\\x82A"},
    {"truncated sequence before a valid one", "\xe2\xc3\xa9", "\\xe2\xc3\xa9"},
};

TEST_CASE("IsValidUtf8 and SanitizeUtf8: the edge cases of well-formed UTF-8") {
  for (const Case& c : kCases) {
    INFO(c.what);
    const bool valid = c.in == c.sanitized;
    CHECK(IsValidUtf8(c.in) == valid);
    CHECK(ProtobufAccepts(c.in) == valid);  // the same definition protobuf enforces
    const std::string out = SanitizeUtf8(c.in);
    CHECK(out == c.sanitized);
    CHECK(IsValidUtf8(out));
    CHECK(ProtobufAccepts(out));
    CHECK(SanitizeUtf8(out) == out);
  }
}

TEST_CASE("SanitizeStrings: every string field, nested, repeated and in oneofs; bytes untouched") {
  v1::Attestation att;
  att.set_device_id("dev-1");
  att.mutable_platform()->set_hostname("host\xff");
  att.mutable_platform()->set_os_name("Debian GNU/Linux 12 (bookworm)");
  v1::CheckResult* check = att.add_checks();
  check->set_check(kScreenLock);
  v1::ScreenLockEvidence* sl = check->mutable_evidence()->mutable_screen_lock();
  sl->add_sessions_found("/usr/share/xsessions/ok.desktop");
  sl->add_sessions_found("/usr/share/xsessions/\xc0\xaf.desktop");
  v1::UserScreenLock* user = sl->add_users();
  user->set_user("al\xe9");  // Latin-1, not UTF-8
  user->add_errors("fine");
  user->add_errors("bad \xed\xa0\x80");
  user->mutable_idle_seconds()->set_value(300);
  user->mutable_idle_seconds()->mutable_from()->set_raw("idle-delay uint32 300\xfe");
  check = att.add_checks();
  check->set_check(kPasswordPolicy);
  check->mutable_evidence()->set_collection_error("cannot read /etc/\xff");
  const v1::Attestation before = att;

  SanitizeStrings(&att);

  CHECK(att.device_id() == "dev-1");
  CHECK(att.platform().hostname() == "host\\xff");
  CHECK(att.platform().os_name() == "Debian GNU/Linux 12 (bookworm)");
  const v1::ScreenLockEvidence& got = att.checks(0).evidence().screen_lock();
  CHECK(got.sessions_found(0) == "/usr/share/xsessions/ok.desktop");
  CHECK(got.sessions_found(1) == "/usr/share/xsessions/\\xc0\\xaf.desktop");
  CHECK(got.users(0).user() == "al\\xe9");
  CHECK(got.users(0).errors(0) == "fine");
  CHECK(got.users(0).errors(1) == "bad \\xed\\xa0\\x80");
  CHECK(got.users(0).idle_seconds().value() == 300);
  CHECK(got.users(0).idle_seconds().from().raw() == "idle-delay uint32 300\\xfe");
  CHECK(att.checks(1).evidence().collection_error() == "cannot read /etc/\\xff");
  // Nothing was set that was not set before: presence is unchanged.
  CHECK_FALSE(att.has_agent_health());
  CHECK_FALSE(att.has_issued_at());
  CHECK_FALSE(att.checks(1).evidence().has_password_policy());
  CHECK(att.checks(0).evidence().has_screen_lock());
  CHECK(att.ByteSizeLong() > before.ByteSizeLong());

  // Valid input: nothing changes.
  v1::Attestation clean = att;
  SanitizeStrings(&clean);
  CHECK(clean.SerializeAsString() == att.SerializeAsString());

  // `bytes` fields hold binary on purpose.
  v1::EnrollRequest enroll;
  enroll.set_public_key(std::string("\xff\x00\xc0\xaf", 4));
  enroll.set_hostname("h\xff");
  enroll.mutable_platform()->set_machine_id("\xfe");
  SanitizeStrings(&enroll);
  CHECK(enroll.public_key() == std::string("\xff\x00\xc0\xaf", 4));
  CHECK(enroll.hostname() == "h\\xff");
  CHECK(enroll.platform().machine_id() == "\\xfe");
}

TEST_CASE("SanitizeStrings: map keys and values") {
  google::protobuf::Struct s;
  (*s.mutable_fields())["k\xff"].set_string_value("v\xfe");
  (*s.mutable_fields())["ok"].mutable_list_value()->add_values()->set_string_value("\x80");
  SanitizeStrings(&s);
  REQUIRE(s.fields().size() == 2);
  REQUIRE(s.fields().count("k\\xff") == 1);
  CHECK(s.fields().at("k\\xff").string_value() == "v\\xfe");
  CHECK(s.fields().at("ok").list_value().values(0).string_value() == "\\x80");
}

// The fixture holds a user's own KDE setting `Autolock=False` followed by the byte 0xFF, and a
// login.defs line ending in the overlong sequence C0 AF (tests/fixtures/invalid_utf8/README.md).
// Before the collectors sanitized their output, the agent signed these bytes as they were
// (protobuf only logs when serializing them) and the server's parse refused them: every
// attestation of the device was rejected, and the device flagged TAMPERED.
TEST_CASE("end to end: evidence that was not UTF-8 is signed, verified and parsed") {
  auto view = NewRootedSystemView(std::string(VIGIL_FIXTURES_DIR) + "/invalid_utf8");
  v1::Attestation att;
  att.set_device_id("dev-utf8");
  att.set_sequence(1);
  *att.mutable_platform() = CollectPlatform(*view);
  for (auto& c : CollectAll(*view)) *att.add_checks() = std::move(c);
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());

  auto signed_att = signing::SignAttestation(att, *key);
  REQUIRE(signed_att.ok());
  auto parsed = signing::VerifyAttestation(*signed_att, key->PublicKey());
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());

  // /proc/sys/kernel/hostname is absent under the fixture: /etc/hostname ends in the byte FE.
  CHECK(parsed->platform().hostname() == "laptop\\xfe");
  REQUIRE(parsed->checks_size() == 3);
  const auto& sl = parsed->checks(0).evidence().screen_lock();
  REQUIRE(sl.users_size() == 1);
  CHECK(sl.users(0).idle_activation_enabled().from().raw() == "Autolock=False\\xff");
  bool warned = false;
  for (const auto& w : sl.warnings()) warned |= w.find("Autolock=False\\xff") != std::string::npos;
  CHECK(warned);
  const auto& pp = parsed->checks(1).evidence().password_policy();
  CHECK(pp.encrypt_method().value() == "YESCRYPT\\xc0\\xaf");
  CHECK(pp.encrypt_method().from().raw() == "ENCRYPT_METHOD YESCRYPT\\xc0\\xaf");
}

// What the pass prevents: the same bytes left as they are sign, but never parse.
TEST_CASE("without the pass: an attestation holding invalid UTF-8 signs but does not parse") {
  v1::Attestation att;
  att.set_device_id("dev-utf8");
  att.set_sequence(1);
  v1::CheckResult* c = att.add_checks();
  c->set_check(kScreenLock);
  c->mutable_evidence()->mutable_screen_lock()->add_warnings("Autolock=False\xff");
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  google::protobuf::LogSilencer quiet;
  auto signed_att = signing::SignAttestation(att, *key);
  REQUIRE(signed_att.ok());
  auto parsed = signing::VerifyAttestation(*signed_att, key->PublicKey());
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == Status::Code::kInvalidArgument);

  SanitizeStrings(&att);
  signed_att = signing::SignAttestation(att, *key);
  REQUIRE(signed_att.ok());
  CHECK(signing::VerifyAttestation(*signed_att, key->PublicKey()).ok());
}

}  // namespace
}  // namespace vigil::collectors

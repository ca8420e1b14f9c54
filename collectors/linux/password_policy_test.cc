// Tests for the Linux password_policy collector against fixture trees, and end to end with the
// evaluator (collect, then judge against a typical policy).
#include <doctest/doctest.h>

#include <string>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"

namespace vigil::collectors {
namespace {

std::unique_ptr<SystemView> Fixture(const std::string& name) {
  return NewRootedSystemView(std::string(VIGIL_FIXTURES_DIR) + "/password_policy/" + name);
}

v1::PasswordPolicy TypicalPolicy() {
  v1::PasswordPolicy p;
  p.set_min_length(12);
  p.set_min_classes(3);
  p.set_max_age_days(365);
  p.set_max_failed_attempts(10);
  return p;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Collected facts per fixture: the value and where it came from.
TEST_CASE("CollectPasswordPolicy: effective settings per fixture") {
  struct Case {
    const char* fixture;
    bool quality;
    int64_t min_length;
    std::string length_source;
    int64_t min_classes;
    int64_t deny;
    std::string deny_source;
    int64_t default_max_age;
  } cases[] = {
      {"debian_default", false, 6, "default:pam_unix", 0, 0, "/etc/pam.d/common-auth", 99999},
      {"pwquality_conf", true, 14, "/etc/security/pwquality.conf", 3, 5, "/etc/pam.d/common-auth",
       90},
      {"pam_arg_override", true, 8, "/etc/pam.d/common-password", 3, 5, "/etc/pam.d/common-auth",
       90},
      {"pwquality_conf_d", true, 16, "/etc/security/pwquality.conf.d/50-site.conf", 4, 5,
       "/etc/pam.d/common-auth", 90},
      {"pwquality_main_wins", true, 12, "/etc/security/pwquality.conf", 0, 5,
       "/etc/pam.d/common-auth", 90},
      {"negative_credits", true, 12, "/etc/security/pwquality.conf", 3, 5, "/etc/pam.d/common-auth",
       90},
      {"positive_credits", true, 11, "/etc/security/pwquality.conf", 3, 5, "/etc/pam.d/common-auth",
       90},
      {"faillock_conf", true, 14, "/etc/security/pwquality.conf", 3, 4,
       "/etc/security/faillock.conf", 90},
      {"pwquality_not_enforcing", false, 6, "default:pam_unix", 0, 5, "/etc/pam.d/common-auth", 90},
      // password-auth includes pw-local (minlen=9 argument) and allows 8 failures: the weaker
      // stack is reported.
      {"rhel", true, 9, "/etc/pam.d/pw-local", 4, 8, "/etc/pam.d/password-auth", 90},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.fixture));
    auto view = Fixture(c.fixture);
    v1::Evidence ev = CollectPasswordPolicy(*view);
    REQUIRE(ev.collection_error() == "");
    const auto& e = ev.password_policy();
    CHECK(e.quality_module_enforced().value() == c.quality);
    CHECK(e.min_length().value() == c.min_length);
    CHECK(e.min_length().from().source() == c.length_source);
    CHECK(e.min_classes().value() == c.min_classes);
    CHECK(e.max_failed_attempts().value() == c.deny);
    CHECK(e.max_failed_attempts().from().source() == c.deny_source);
    CHECK(e.default_max_age_days().value() == c.default_max_age);
    CHECK(!e.min_length().from().user_can_override());
  }
}

TEST_CASE("CollectPasswordPolicy: accounts, nullok and provenance details") {
  auto view = Fixture("debian_default");
  v1::Evidence ev = CollectPasswordPolicy(*view);
  REQUIRE(ev.collection_error() == "");
  const auto& e = ev.password_policy();
  // root (uid 0) and the two human users with login shells; svc has nologin.
  REQUIRE(e.accounts_size() == 3);
  CHECK(e.accounts(0).user() == "root");
  CHECK(e.accounts(0).locked());
  CHECK(e.accounts(1).user() == "alice");
  CHECK(e.accounts(1).max_age_days().value() == 99999);
  CHECK(e.accounts(1).max_age_days().from().source() == "/etc/shadow");
  CHECK(e.accounts(2).user() == "bob");
  CHECK(e.nullok().value());
  CHECK(e.nullok().from().source() == "/etc/pam.d/common-auth");
  CHECK(Contains(e.max_failed_attempts().from().raw(),
                 "no lockout module in /etc/pam.d/common-auth"));
  CHECK(Contains(e.min_length().from().raw(), "pam_unix.so obscure yescrypt"));
  // No hash ever reaches the evidence.
  CHECK(!Contains(ev.DebugString(), "$y$"));

  auto pos = CollectPasswordPolicy(*Fixture("positive_credits"));
  bool warned = false;
  for (const auto& w : pos.password_policy().warnings()) warned |= Contains(w, "positive credits");
  CHECK(warned);
  CHECK(Contains(pos.password_policy().min_length().from().raw(), "accepts passwords of 11"));
}

TEST_CASE("CollectPasswordPolicy: missing PAM configuration is an error") {
  v1::Evidence ev = CollectPasswordPolicy(*Fixture("no_pam"));
  CHECK(Contains(ev.collection_error(), "no PAM password stack"));
}

// A twin that cannot read /etc/shadow, as when the agent does not run as root.
class NoShadowView : public ForwardingSystemView {
 public:
  using ForwardingSystemView::ForwardingSystemView;
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) const override {
    if (path == "/etc/shadow") return Status::PermissionDenied("/etc/shadow: Permission denied");
    return ForwardingSystemView::ReadFile(path, max_bytes);
  }
};

TEST_CASE("CollectPasswordPolicy: unreadable /etc/shadow makes the check ERROR") {
  auto base = Fixture("pwquality_conf");
  NoShadowView view(*base);
  v1::Evidence ev = CollectPasswordPolicy(view);
  CHECK(ev.collection_error() == "/etc/shadow: Permission denied (run the agent as root)");
  v1::Policy policy;
  *policy.mutable_password() = TypicalPolicy();
  Verdict v = Evaluate(kPasswordPolicy, ev, policy);
  CHECK(v.status == v1::ERROR);
  CHECK(Contains(v.reason, "run the agent as root"));
}

TEST_CASE("password_policy end to end against a typical policy") {
  struct Case {
    const char* fixture;
    v1::CheckStatus status;
    std::vector<std::string> reason_parts;
  } cases[] = {
      {"debian_default",
       v1::FAIL,
       {"minimum password length 6 (default:pam_unix) is below the required 12",
        "no enforcing password quality module (pam_pwquality or pam_cracklib) in the PAM password "
        "stack (/etc/pam.d/common-password)",
        "required character classes 0 (default:pam_unix) is below the required 3",
        "no account lockout", "alice (99999 days), bob (99999 days)"}},
      {"pwquality_conf",
       v1::PASS,
       {"minimum length 14 (/etc/security/pwquality.conf, minlen)", "lockout after 5 failures"}},
      {"pam_arg_override",
       v1::FAIL,
       {"minimum password length 8 (/etc/pam.d/common-password, minlen) is below the required 12"}},
      {"pwquality_conf_d", v1::PASS, {"minimum length 16"}},
      {"negative_credits", v1::PASS, {"3 character classes"}},
      {"faillock_conf", v1::PASS, {"lockout after 4 failures (/etc/security/faillock.conf, deny)"}},
      {"empty_password", v1::FAIL, {"account bob has an empty password"}},
      {"never_expires",
       v1::FAIL,
       {"default maximum password age for new accounts 99999 days (/etc/login.defs, PASS_MAX_DAYS)",
        "alice (never expires)"}},
      {"rhel", v1::FAIL, {"minimum password length 9 (/etc/pam.d/pw-local, minlen)"}},
  };
  v1::Policy policy;
  *policy.mutable_password() = TypicalPolicy();
  for (const auto& c : cases) {
    INFO(std::string(c.fixture));
    v1::Evidence ev = CollectPasswordPolicy(*Fixture(c.fixture));
    Verdict v = Evaluate(kPasswordPolicy, ev, policy);
    INFO(v.reason);
    CHECK(v.status == c.status);
    for (const auto& part : c.reason_parts) CHECK(Contains(v.reason, part));
  }
}

}  // namespace
}  // namespace vigil::collectors

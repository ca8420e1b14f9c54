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

TEST_CASE("CollectPasswordPolicy: unreadable /etc/shadow makes the check ERROR") {
  auto base = Fixture("pwquality_conf");
  DenyReadView view(*base, "/etc/shadow");
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
        "no account lockout",
        "alice (99999 days, /etc/shadow:4), bob (99999 days, /etc/shadow:5)"}},
      {"pwquality_conf",
       v1::PASS,
       {"minimum length 14 (/etc/security/pwquality.conf:22, minlen)",
        "lockout after 5 failures (/etc/pam.d/common-auth:4, deny)"}},
      {"pam_arg_override",
       v1::FAIL,
       {"minimum password length 8 (/etc/pam.d/common-password:2, minlen) is below the required "
        "12"}},
      {"pwquality_conf_d", v1::PASS, {"minimum length 16"}},
      {"negative_credits", v1::PASS, {"3 character classes"}},
      {"faillock_conf",
       v1::PASS,
       {"lockout after 4 failures (/etc/security/faillock.conf:8, deny)"}},
      {"empty_password", v1::FAIL, {"account bob (/etc/shadow:", "has an empty password"}},
      // shadow's getdef keeps "# hardened" in the value, cannot parse it, and uses -1.
      {"login_defs_inline_comment",
       v1::FAIL,
       {"default maximum password age for new accounts never expires (/etc/login.defs:13, "
        "PASS_MAX_DAYS)"}},
      {"pwquality_commented", v1::FAIL, {"no enforcing password quality module"}},
      {"never_expires",
       v1::FAIL,
       {"default maximum password age for new accounts 99999 days (/etc/login.defs:12, "
        "PASS_MAX_DAYS)",
        "alice (never expires, /etc/shadow:"}},
      {"rhel", v1::FAIL, {"minimum password length 9 (/etc/pam.d/pw-local:1, minlen)"}},
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

TEST_CASE("CollectPasswordPolicy: login.defs fields, faillock timing and line numbers") {
  struct Case {
    const char* fixture;
    int64_t max_days;
    uint32_t max_line;
    int64_t min_days;
    int64_t warn_age;
    std::string encrypt;
    uint32_t encrypt_line;
  } cases[] = {
      // Repeated PASS_MAX_DAYS: the later line (14) wins over 99999 on line 12.
      {"pwquality_conf", 90, 14, 0, 7, "YESCRYPT", 19},
      {"login_defs_inline_comment", -1, 13, 0, 7, "YESCRYPT", 18},
      {"debian_default", 99999, 0, 0, 7, "YESCRYPT", 0},
      // No /etc/login.defs at all: shadow's defaults.
      {"no_login_defs", -1, 0, -1, -1, "", 0},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.fixture));
    v1::Evidence ev = CollectPasswordPolicy(*Fixture(c.fixture));
    REQUIRE(ev.collection_error() == "");
    const auto& e = ev.password_policy();
    CHECK(e.default_max_age_days().value() == c.max_days);
    if (c.max_line != 0) CHECK(e.default_max_age_days().from().line() == c.max_line);
    CHECK(e.default_min_age_days().value() == c.min_days);
    CHECK(e.default_warn_age_days().value() == c.warn_age);
    CHECK(e.encrypt_method().value() == c.encrypt);
    if (c.encrypt_line != 0) CHECK(e.encrypt_method().from().line() == c.encrypt_line);
  }
  auto inline_comment = CollectPasswordPolicy(*Fixture("login_defs_inline_comment"));
  bool warned = false;
  for (const auto& w : inline_comment.password_policy().warnings()) {
    warned |= Contains(w, "/etc/login.defs:13: PASS_MAX_DAYS '90   # hardened' is not a number");
  }
  CHECK(warned);
  auto none = CollectPasswordPolicy(*Fixture("no_login_defs")).password_policy();
  CHECK(none.default_max_age_days().from().source() == "default:shadow");

  // faillock.conf: deny 4 (line 8, the last of three), unlock_time 600 (line 9) overridden by the
  // authfail line's argument (a continuation: the logical line starts on line 4), fail_interval
  // from the file.
  auto f = CollectPasswordPolicy(*Fixture("faillock_conf")).password_policy();
  CHECK(f.max_failed_attempts().value() == 4);
  CHECK(f.max_failed_attempts().from().line() == 8);
  CHECK(f.lockout_unlock_seconds().value() == 900);
  CHECK(f.lockout_unlock_seconds().from().source() == "/etc/pam.d/common-auth");
  CHECK(f.lockout_unlock_seconds().from().line() == 4);
  CHECK(f.lockout_fail_interval_seconds().value() == 1800);
  CHECK(f.lockout_fail_interval_seconds().from().source() == "/etc/security/faillock.conf");
  CHECK(f.lockout_fail_interval_seconds().from().line() == 11);
  // faillock.conf's unlock_time = 600 is overridden by the module argument; fail_interval is set
  // nowhere: pam_faillock's built-in 900.
  auto d = CollectPasswordPolicy(*Fixture("pwquality_conf")).password_policy();
  CHECK(d.lockout_unlock_seconds().value() == 900);
  CHECK(d.lockout_unlock_seconds().from().source() == "/etc/pam.d/common-auth");
  CHECK(d.lockout_unlock_seconds().from().line() == 4);
  CHECK(d.lockout_fail_interval_seconds().value() == 900);
  CHECK(d.lockout_fail_interval_seconds().from().source() == "default:pam_faillock");
  // "unlock_time=never" and values above pam_faillock's 604800 limit.
  auto n = CollectPasswordPolicy(*Fixture("faillock_never")).password_policy();
  CHECK(n.lockout_unlock_seconds().value() == 0);
  CHECK(n.lockout_fail_interval_seconds().value() == 604800);
  // No pam_faillock: no timing facts.
  auto t = CollectPasswordPolicy(*Fixture("debian_default")).password_policy();
  CHECK(!t.has_lockout_unlock_seconds());

  // Every value names its line.
  CHECK(d.min_length().from().line() == 22);
  CHECK(d.quality_module_enforced().from().line() > 0);
  CHECK(d.accounts(1).max_age_days().from().line() > 0);
  auto deb = CollectPasswordPolicy(*Fixture("debian_default")).password_policy();
  CHECK(deb.nullok().from().line() > 0);
  CHECK(deb.accounts(1).max_age_days().from().line() == 4);
}

TEST_CASE("CollectPasswordPolicy: a commented-out pam_pwquality line is not in the stack") {
  // pwquality.conf says minlen = 14, but the module that would read it is commented out.
  auto e = CollectPasswordPolicy(*Fixture("pwquality_commented")).password_policy();
  CHECK(!e.quality_module_enforced().value());
  CHECK(e.min_length().value() == 6);
  CHECK(e.min_length().from().source() == "default:pam_unix");
}

TEST_CASE("CollectPasswordPolicy: unreadable sources are errors") {
  struct Case {
    const char* fixture;
    const char* path;
  } cases[] = {
      {"faillock_conf", "/etc/security/faillock.conf"},
      {"pwquality_conf", "/etc/security/pwquality.conf"},
      {"pwquality_conf_d", "/etc/security/pwquality.conf.d/50-site.conf"},
      {"pwquality_conf", "/etc/login.defs"},
      {"pwquality_conf", "/etc/pam.d/common-auth"},
  };
  v1::Policy policy;
  *policy.mutable_password() = TypicalPolicy();
  for (const auto& c : cases) {
    INFO(c.path);
    auto base = Fixture(c.fixture);
    DenyReadView view(*base, c.path);
    v1::Evidence ev = CollectPasswordPolicy(view);
    CHECK(Contains(ev.collection_error(), std::string(c.path) + ": Permission denied"));
    CHECK(Evaluate(kPasswordPolicy, ev, policy).status == v1::ERROR);
  }
}

}  // namespace
}  // namespace vigil::collectors

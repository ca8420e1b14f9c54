// Tests for the password_policy rule over hand-built evidence.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "collectors/evaluate.h"

namespace vigil::collectors {
namespace {

void Set(v1::IntFact* f, int64_t v, const char* source, const char* key) {
  f->set_value(v);
  f->mutable_from()->set_source(source);
  f->mutable_from()->set_key(key);
}

// A compliant baseline; each case breaks one thing.
v1::PasswordPolicyEvidence Good() {
  v1::PasswordPolicyEvidence e;
  e.mutable_quality_module_enforced()->set_value(true);
  e.mutable_quality_module_enforced()->mutable_from()->set_source("/etc/pam.d/common-password");
  Set(e.mutable_min_length(), 14, "/etc/security/pwquality.conf", "minlen");
  Set(e.mutable_min_classes(), 3, "/etc/security/pwquality.conf", "minclass");
  Set(e.mutable_default_max_age_days(), 90, "/etc/login.defs", "PASS_MAX_DAYS");
  Set(e.mutable_max_failed_attempts(), 5, "/etc/pam.d/common-auth", "deny");
  auto* root = e.add_accounts();
  root->set_user("root");
  root->set_locked(true);
  Set(root->mutable_max_age_days(), 99999, "/etc/shadow", "root:max_days");
  auto* alice = e.add_accounts();
  alice->set_user("alice");
  alice->set_uid(1000);
  Set(alice->mutable_max_age_days(), 90, "/etc/shadow", "alice:max_days");
  return e;
}

v1::PasswordPolicy Policy() {
  v1::PasswordPolicy p;
  p.set_min_length(12);
  p.set_min_classes(3);
  p.set_max_age_days(365);
  p.set_max_failed_attempts(10);
  return p;
}

TEST_CASE("EvaluatePasswordPolicy") {
  struct Case {
    const char* name;
    void (*mutate)(v1::PasswordPolicyEvidence*, v1::PasswordPolicy*);
    v1::CheckStatus status;
    std::vector<std::string> parts;
  } cases[] = {
      {"compliant",
       [](v1::PasswordPolicyEvidence*, v1::PasswordPolicy*) {},
       v1::PASS,
       {"minimum length 14 (/etc/security/pwquality.conf, minlen)", "lockout after 5 failures",
        "1 active account"}},
      {"short length",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_min_length(), 6, "default:pam_unix", "minlen");
         e->mutable_quality_module_enforced()->set_value(false);
       },
       v1::FAIL,
       {"no enforcing password quality module",
        "minimum password length 6 (default:pam_unix) is "
        "below the required 12"}},
      {"no quality module but long enough",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy* p) {
         e->mutable_quality_module_enforced()->set_value(false);
         Set(e->mutable_min_length(), 12, "/etc/pam.d/common-password", "minlen");
         Set(e->mutable_min_classes(), 0, "default:pam_unix", "minclass");
         p->set_min_classes(0);
       },
       v1::PASS,
       {"minimum length 12"}},
      {"few classes",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_min_classes(), 2, "/etc/security/pwquality.conf", "minclass");
       },
       v1::FAIL,
       {"required character classes 2 (/etc/security/pwquality.conf, minclass)"}},
      {"empty password is always a failure",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy* p) {
         *p = v1::PasswordPolicy();
         e->mutable_accounts(1)->set_empty_password(true);
       },
       v1::FAIL,
       {"account alice (/etc/shadow) has an empty password"}},
      {"empty password with nullok names both lines",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         e->mutable_accounts(1)->set_empty_password(true);
         e->mutable_accounts(1)->mutable_max_age_days()->mutable_from()->set_line(3);
         e->mutable_nullok()->set_value(true);
         e->mutable_nullok()->mutable_from()->set_source("/etc/pam.d/common-auth");
         e->mutable_nullok()->mutable_from()->set_key("nullok");
         e->mutable_nullok()->mutable_from()->set_line(17);
       },
       v1::FAIL,
       {"account alice (/etc/shadow:3) has an empty password and pam_unix nullok "
        "(/etc/pam.d/common-auth:17, nullok) accepts it"}},
      {"reasons name file:line",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_min_length(), 8, "/etc/security/pwquality.conf", "minlen");
         e->mutable_min_length()->mutable_from()->set_line(22);
       },
       v1::FAIL,
       {"minimum password length 8 (/etc/security/pwquality.conf:22, minlen) is below the "
        "required 12"}},
      {"never expires",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_accounts(1)->mutable_max_age_days(), -1, "/etc/shadow", "alice:max_days");
       },
       v1::FAIL,
       {"alice (never expires, /etc/shadow)"}},
      {"locked accounts are exempt from aging",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {},
       v1::PASS,
       {}},
      {"max age not required",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy* p) {
         p->set_max_age_days(0);
         Set(e->mutable_default_max_age_days(), -1, "default:shadow", "PASS_MAX_DAYS");
         Set(e->mutable_accounts(1)->mutable_max_age_days(), -1, "/etc/shadow", "alice:max_days");
       },
       v1::PASS,
       {}},
      {"default max age too long",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_default_max_age_days(), 99999, "/etc/login.defs", "PASS_MAX_DAYS");
       },
       v1::FAIL,
       {"99999 days (/etc/login.defs, PASS_MAX_DAYS) exceeds 365 days"}},
      {"no lockout",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_max_failed_attempts(), 0, "/etc/pam.d/common-auth", "deny");
         e->mutable_max_failed_attempts()->mutable_from()->set_raw(
             "no lockout module in /etc/pam.d/common-auth");
       },
       v1::FAIL,
       {"no account lockout", "no lockout module in /etc/pam.d/common-auth"}},
      {"lockout too lax",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) {
         Set(e->mutable_max_failed_attempts(), 20, "/etc/security/faillock.conf", "deny");
       },
       v1::FAIL,
       {"after 20 failed logins (/etc/security/faillock.conf, deny) exceeds the allowed 10"}},
      {"lockout not required",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy* p) {
         p->set_max_failed_attempts(0);
         Set(e->mutable_max_failed_attempts(), 0, "/etc/pam.d/common-auth", "deny");
       },
       v1::PASS,
       {}},
      {"incomplete evidence",
       [](v1::PasswordPolicyEvidence* e, v1::PasswordPolicy*) { e->clear_min_length(); },
       v1::ERROR,
       {"incomplete"}},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.name));
    v1::PasswordPolicyEvidence e = Good();
    v1::PasswordPolicy p = Policy();
    c.mutate(&e, &p);
    Verdict v = EvaluatePasswordPolicy(e, p);
    INFO(v.reason);
    CHECK(v.status == c.status);
    for (const auto& part : c.parts) CHECK(v.reason.find(part) != std::string::npos);
  }
}

}  // namespace
}  // namespace vigil::collectors

// password_policy rule: the effective PAM/shadow settings against the company's password policy.
// Every failure reason names the value found, the limit and where the value came from.
#include <string>
#include <vector>

#include "collectors/evaluate.h"
#include "collectors/text.h"

namespace vigil::collectors {
namespace {

// "file:line, key" (the line when known), or the default's name.
std::string From(const v1::Provenance& p) {
  const std::string at = p.line() > 0 ? p.source() + ":" + std::to_string(p.line()) : p.source();
  return p.key().empty() || p.source().rfind("default:", 0) == 0 ? at : at + ", " + p.key();
}

std::string Days(int64_t d) { return d < 0 ? "never expires" : std::to_string(d) + " days"; }

// "/etc/shadow:3" for an account's shadow line, when the collector recorded it.
std::string ShadowLine(const v1::AccountPassword& a) {
  const auto& p = a.max_age_days().from();
  return p.line() > 0 ? p.source() + ":" + std::to_string(p.line()) : "/etc/shadow";
}

}  // namespace

Verdict EvaluatePasswordPolicy(const v1::PasswordPolicyEvidence& e, const v1::PasswordPolicy& p) {
  // Each fact must be present: a missing one means the collector could not establish it.
  if (!e.has_min_length() || !e.has_min_classes() || !e.has_max_failed_attempts() ||
      !e.has_default_max_age_days() || !e.has_quality_module_enforced()) {
    return {v1::ERROR, "password_policy evidence is incomplete"};
  }
  std::vector<std::string> fails;
  const bool short_length = p.min_length() > 0 && e.min_length().value() < p.min_length();
  const bool few_classes = p.min_classes() > 0 && e.min_classes().value() < p.min_classes();
  if (!e.quality_module_enforced().value() && (short_length || few_classes)) {
    fails.push_back(
        "no enforcing password quality module (pam_pwquality or pam_cracklib) in the "
        "PAM password stack (" +
        e.quality_module_enforced().from().source() + ")");
  }
  if (short_length) {
    fails.push_back("minimum password length " + std::to_string(e.min_length().value()) + " (" +
                    From(e.min_length().from()) + ") is below the required " +
                    std::to_string(p.min_length()));
  }
  if (few_classes) {
    fails.push_back("required character classes " + std::to_string(e.min_classes().value()) + " (" +
                    From(e.min_classes().from()) + ") is below the required " +
                    std::to_string(p.min_classes()));
  }

  std::vector<std::string> empty;
  std::vector<std::string> too_old;
  int active = 0;
  for (const auto& a : e.accounts()) {
    if (a.empty_password()) empty.push_back(a.user() + " (" + ShadowLine(a) + ")");
    if (a.locked()) continue;
    ++active;
    if (p.max_age_days() == 0) continue;
    const int64_t d = a.max_age_days().value();
    if (!a.has_max_age_days() || d < 0 || d > p.max_age_days()) {
      too_old.push_back(a.user() + " (" + Days(a.has_max_age_days() ? d : -1) + ", " +
                        ShadowLine(a) + ")");
    }
  }
  if (!empty.empty()) {
    std::string why = "account" + std::string(empty.size() > 1 ? "s " : " ") + Join(empty, ", ") +
                      (empty.size() > 1 ? " have" : " has") + " an empty password";
    if (e.has_nullok() && e.nullok().value()) {
      // nullok is what turns an empty hash into a password-less login.
      why += " and pam_unix nullok (" + From(e.nullok().from()) + ") accepts it";
    }
    fails.push_back(why);
  }
  if (p.max_age_days() > 0) {
    const int64_t def = e.default_max_age_days().value();
    if (def < 0 || def > p.max_age_days()) {
      fails.push_back("default maximum password age for new accounts " + Days(def) + " (" +
                      From(e.default_max_age_days().from()) + ") exceeds " +
                      std::to_string(p.max_age_days()) + " days");
    }
    if (!too_old.empty()) {
      fails.push_back("password maximum age exceeds " + std::to_string(p.max_age_days()) +
                      " days for " + Join(too_old, ", "));
    }
  }
  if (p.max_failed_attempts() > 0) {
    const int64_t deny = e.max_failed_attempts().value();
    if (deny == 0) {
      fails.push_back(
          "no account lockout after failed logins (" + e.max_failed_attempts().from().raw() +
          "); the policy requires lockout after " + std::to_string(p.max_failed_attempts()));
    } else if (deny > p.max_failed_attempts()) {
      fails.push_back("account lockout after " + std::to_string(deny) + " failed logins (" +
                      From(e.max_failed_attempts().from()) + ") exceeds the allowed " +
                      std::to_string(p.max_failed_attempts()));
    }
  }
  if (!fails.empty()) return {v1::FAIL, Join(fails, "; ")};

  std::vector<std::string> ok;
  ok.push_back("minimum length " + std::to_string(e.min_length().value()) + " (" +
               From(e.min_length().from()) + ")");
  ok.push_back(std::to_string(e.min_classes().value()) + " character classes");
  if (e.max_failed_attempts().value() > 0) {
    ok.push_back("lockout after " + std::to_string(e.max_failed_attempts().value()) +
                 " failures (" + From(e.max_failed_attempts().from()) + ")");
  }
  if (p.max_age_days() > 0) {
    ok.push_back("maximum age within " + std::to_string(p.max_age_days()) + " days for " +
                 std::to_string(active) + " active account" + (active == 1 ? "" : "s"));
  }
  ok.push_back("no empty passwords");
  return {v1::PASS, "password policy met: " + Join(ok, ", ")};
}

}  // namespace vigil::collectors

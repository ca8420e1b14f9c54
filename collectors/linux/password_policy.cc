// Linux password_policy collector: the effective password rules as PAM, libpwquality,
// pam_faillock and shadow apply them, each value with the file and line it came from.
//
// Sources, in the precedence their own code uses:
// - Password stack: /etc/pam.d/common-password (Debian, SUSE), system-auth and password-auth
//   (RHEL, Arch); every stack present is resolved and the weakest result is reported, since any
//   of them can be the one a login service uses.
// - pam_pwquality: built-in defaults, then /etc/security/pwquality.conf.d/*.conf in strcmp order,
//   then /etc/security/pwquality.conf (libpwquality's pwquality_read_config reads the directory
//   first, so the main file wins), then the module's arguments.
// - pam_cracklib: built-in defaults, then its arguments (it reads no file).
// - No quality module (or enforcing=0): pam_unix's minlen= argument, else its built-in 6.
// - pam_faillock: defaults (deny=3), then the conf= file (default /etc/security/faillock.conf),
//   then the module's arguments. pam_tally2/pam_tally: deny= argument, else no lockout.
// - pam_faillock also yields unlock_time (default 600, "never" = 0) and fail_interval (default
//   900), both clamped to 604800 as pam_faillock does.
// - login.defs PASS_MAX_DAYS, PASS_MIN_DAYS, PASS_WARN_AGE (absent or not a number: -1, per
//   login.defs(5) and getdef.c), ENCRYPT_METHOD; /etc/shadow field 5. Every value carries its
//   file and line (Provenance.line).
#include <algorithm>
#include <charconv>
#include <set>

#include "collectors/collectors.h"
#include "collectors/linux/accounts.h"
#include "collectors/linux/pam.h"
#include "collectors/linux/pwquality.h"
#include "collectors/linux/shadow.h"

namespace vigil::collectors {
namespace {

using linux_os::ApplyQualitySetting;
using linux_os::ApplyResult;
using linux_os::PamModuleName;
using linux_os::PamStack;
using linux_os::PamStackEntry;
using linux_os::QualitySettings;

constexpr const char* kPasswordStacks[] = {"/etc/pam.d/common-password", "/etc/pam.d/system-auth",
                                           "/etc/pam.d/password-auth"};
constexpr const char* kAuthStacks[] = {"/etc/pam.d/common-auth", "/etc/pam.d/system-auth",
                                       "/etc/pam.d/password-auth"};
constexpr const char* kPwqualityConf = "/etc/security/pwquality.conf";
constexpr const char* kFaillockConf = "/etc/security/faillock.conf";

// A config file an unprivileged user can write is a setting that user can override.
bool UserWritable(const SystemView& view, const std::string& source) {
  if (source.empty() || source[0] != '/') return false;
  auto info = view.Stat(source);
  return info.ok() && (info->mode & 0002) != 0;
}

v1::Provenance Prov(const SystemView& view, const std::string& source, const std::string& key,
                    const std::string& raw, int line = 0) {
  v1::Provenance p;
  p.set_source(source);
  p.set_key(key);
  p.set_raw(raw);
  p.set_line(static_cast<uint32_t>(line));
  p.set_user_can_override(UserWritable(view, source));
  return p;
}

// Provenance of a PAM stack line.
v1::Provenance Prov(const SystemView& view, const PamStackEntry& e, const std::string& key) {
  return Prov(view, e.file, key, e.line.text, e.line.line_no);
}

v1::Provenance Prov(const SystemView& view, const linux_os::QualityValue& v, const std::string& key,
                    const std::string& raw) {
  return Prov(view, v.source, key, raw, v.line);
}

void SetInt(v1::IntFact* f, int64_t value, v1::Provenance p) {
  f->set_value(value);
  *f->mutable_from() = std::move(p);
}

void SetBool(v1::BoolFact* f, bool value, v1::Provenance p) {
  f->set_value(value);
  *f->mutable_from() = std::move(p);
}

std::string Where(const PamStackEntry& e) { return e.file + ":" + std::to_string(e.line.line_no); }

struct NamedStack {
  std::string file;
  PamStack stack;
};

// Resolves the `type` stack of every file in `files` that exists. Unreadable (not missing)
// files are errors: a stack we cannot see could be the weak one.
Result<std::vector<NamedStack>> ReadStacks(const SystemView& view, const char* const* begin,
                                           const char* const* end, std::string_view type,
                                           std::vector<std::string>* warnings) {
  std::vector<NamedStack> out;
  for (const char* const* f = begin; f != end; ++f) {
    auto stack = linux_os::ResolvePamStack(view, *f, type);
    if (!stack.ok()) {
      if (stack.status().code() == Status::Code::kNotFound) continue;
      return stack.status();
    }
    for (auto& w : stack->warnings) warnings->push_back(w);
    out.push_back({*f, std::move(stack.value())});
  }
  return out;
}

// Reads pwquality.conf.d/*.conf then pwquality.conf into `s`, as pwquality_read_config does.
// A file that exists but cannot be read is an error: the settings it holds are unknown.
Status LoadPwqualityFiles(const SystemView& view, QualitySettings* s,
                          std::vector<std::string>* warnings) {
  std::vector<std::string> files;
  const std::string dir = std::string(kPwqualityConf) + ".d";
  auto entries = view.ListDir(dir);
  if (entries.ok()) {
    // libpwquality's filter: the first ".conf" in the name must end it. ListDir is strcmp-sorted.
    for (const auto& e : *entries) {
      size_t p = e.name.find(".conf");
      if (p != std::string::npos && p + 5 == e.name.size()) files.push_back(dir + "/" + e.name);
    }
  } else if (entries.status().code() != Status::Code::kNotFound) {
    return entries.status();
  }
  files.push_back(kPwqualityConf);
  for (const std::string& file : files) {
    auto text = view.ReadFile(file);
    if (!text.ok()) {
      if (text.status().code() != Status::Code::kNotFound) return text.status();
      continue;
    }
    for (const auto& setting : linux_os::ParseSecurityConf(*text)) {
      ApplyResult r = ApplyQualitySetting(s, setting.key, setting.value, file, setting.text,
                                          /*cracklib=*/false, setting.line_no);
      if (r == ApplyResult::kUnknownKey || r == ApplyResult::kBadValue) {
        // libpwquality stops reading here and skips every later file, main file included.
        warnings->push_back(file + ":" + std::to_string(setting.line_no) + ": '" + setting.text +
                            "' is " + (r == ApplyResult::kUnknownKey ? "unknown" : "invalid") +
                            "; libpwquality stops reading its configuration at this line");
        return Status::Ok();
      }
    }
  }
  return Status::Ok();
}

struct PasswordFacts {
  v1::BoolFact enforced;
  v1::IntFact min_length;
  v1::IntFact min_classes;
};

std::string CreditText(const QualitySettings& s) {
  std::string out;
  const std::pair<const char*, const linux_os::QualityValue*> credits[] = {{"dcredit", &s.dcredit},
                                                                           {"ucredit", &s.ucredit},
                                                                           {"lcredit", &s.lcredit},
                                                                           {"ocredit", &s.ocredit}};
  for (const auto& [name, v] : credits) {
    if (v->value == 0) continue;
    if (!out.empty()) out += " ";
    out += std::string(name) + "=" + std::to_string(v->value) + " (" + v->source + ")";
  }
  return out;
}

PasswordFacts FactsForStack(const SystemView& view, const NamedStack& ns,
                            const QualitySettings& file_settings,
                            std::vector<std::string>* warnings) {
  PasswordFacts out;
  const PamStackEntry* quality = nullptr;
  const PamStackEntry* unix_entry = nullptr;
  for (const auto& e : ns.stack.entries) {
    std::string_view name = PamModuleName(e.line.module);
    if (quality == nullptr && (name == "pam_pwquality.so" || name == "pam_cracklib.so")) {
      quality = &e;
    }
    if (unix_entry == nullptr && name == "pam_unix.so") unix_entry = &e;
  }
  if (quality != nullptr) {
    const bool cracklib = PamModuleName(quality->line.module) == "pam_cracklib.so";
    QualitySettings s = cracklib ? linux_os::CracklibDefaults() : file_settings;
    for (const std::string& arg : quality->line.args) {
      size_t eq = arg.find('=');
      std::string key = arg.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
      ApplyResult r = ApplyQualitySetting(&s, key, value, quality->file, quality->line.text,
                                          cracklib, quality->line.line_no);
      if (r == ApplyResult::kBadValue) {
        warnings->push_back(Where(*quality) + ": argument '" + arg + "' is invalid and ignored");
      }
    }
    const std::string module(PamModuleName(quality->line.module));
    if (s.enforcing.value != 0) {
      SetBool(&out.enforced, true, Prov(view, *quality, module));
      const int64_t shortest = linux_os::ShortestAcceptedLength(s);
      std::string raw = s.minlen.raw;
      if (linux_os::PositiveCreditSum(s) > 0) {
        std::string note = "minlen " + std::to_string(s.minlen.value) + " (" + s.minlen.source +
                           ") with positive credits " + CreditText(s) + " accepts passwords of " +
                           std::to_string(shortest) + " characters";
        raw += "; " + note;
        warnings->push_back(note);
      }
      SetInt(&out.min_length, shortest, Prov(view, s.minlen, "minlen", raw));
      const int64_t classes = linux_os::RequiredClasses(s);
      const linux_os::QualityValue* class_from = &s.minclass;
      std::string class_raw = s.minclass.raw;
      if (classes > s.minclass.value) {
        // The negative credits decide; name the first of them as the source.
        for (const auto* c : {&s.dcredit, &s.ucredit, &s.lcredit, &s.ocredit}) {
          if (c->value < 0) {
            class_from = c;
            break;
          }
        }
        class_raw += "; negative credits: " + CreditText(s);
      }
      SetInt(&out.min_classes, classes, Prov(view, *class_from, "minclass", class_raw));
      return out;
    }
    SetBool(&out.enforced, false,
            Prov(view, s.enforcing, "enforcing", s.enforcing.raw + " (" + module + " only warns)"));
    warnings->push_back(s.enforcing.source + ": " + s.enforcing.raw + ": " + module +
                        " only warns about weak passwords");
  } else {
    SetBool(&out.enforced, false,
            Prov(view, ns.file, "pam_pwquality.so",
                 "no pam_pwquality.so or pam_cracklib.so in the password stack"));
  }
  // Without an enforcing quality module only pam_unix's own length check remains.
  if (unix_entry != nullptr) {
    if (auto minlen = linux_os::PamArgValue(unix_entry->line, "minlen")) {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(minlen->data(), minlen->data() + minlen->size(), v);
      if (ec == std::errc() && p == minlen->data() + minlen->size()) {
        SetInt(&out.min_length, v, Prov(view, *unix_entry, "minlen"));
      } else {
        warnings->push_back(Where(*unix_entry) + ": pam_unix minlen='" + *minlen +
                            "' is not a number");
      }
    }
    if (!out.min_length.has_from()) {
      std::string raw = "pam_unix built-in minimum length 6; line: " + unix_entry->line.text;
      SetInt(&out.min_length, 6, Prov(view, "default:pam_unix", "minlen", raw));
    }
  } else {
    SetInt(&out.min_length, 0,
           Prov(view, ns.file, "minlen", "no pam_unix.so or quality module in the password stack"));
  }
  SetInt(&out.min_classes, 0,
         Prov(view, "default:pam_unix", "minclass", "pam_unix checks no classes"));
  return out;
}

// What pam_faillock resolves for one stack line: built-in defaults, then the conf= file (default
// /etc/security/faillock.conf), then the line's own arguments (faillock_config.c's order).
struct Lockout {
  v1::IntFact deny;
  v1::IntFact unlock_time;    // unset without pam_faillock
  v1::IntFact fail_interval;  // unset without pam_faillock
  Status status;              // an unreadable conf= file: the settings are unknown
};

// pam_faillock's MAX_TIME_INTERVAL: longer unlock_time / fail_interval values are clamped to it.
constexpr int64_t kFaillockMaxInterval = 604800;

Lockout FaillockSettings(const SystemView& view, const PamStackEntry& e,
                         std::vector<std::string>* warnings) {
  Lockout out;
  SetInt(&out.deny, 3, Prov(view, "default:pam_faillock", "deny", "pam_faillock built-in deny=3"));
  SetInt(
      &out.unlock_time, 600,
      Prov(view, "default:pam_faillock", "unlock_time", "pam_faillock built-in unlock_time=600"));
  SetInt(&out.fail_interval, 900,
         Prov(view, "default:pam_faillock", "fail_interval",
              "pam_faillock built-in fail_interval=900"));
  auto number = [](const std::string& s, int64_t* v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
    return ec == std::errc() && p == s.data() + s.size() && *v >= 0;
  };
  // Applies one key=value; `where` names the line for warnings.
  auto apply = [&](const std::string& key, const std::string& value, v1::Provenance from,
                   const std::string& where) {
    int64_t v = 0;
    v1::IntFact* target = nullptr;
    if (key == "deny") {
      target = &out.deny;
      if (!number(value, &v) || v > 65535) target = nullptr;
    } else if (key == "unlock_time" || key == "fail_interval") {
      target = key == "unlock_time" ? &out.unlock_time : &out.fail_interval;
      if (key == "unlock_time" && value == "never") {
        v = 0;  // locked until an administrator runs faillock --reset
      } else if (!number(value, &v)) {
        target = nullptr;
      } else if (v > kFaillockMaxInterval) {
        warnings->push_back(where + ": " + key + "=" + value + " is clamped to " +
                            std::to_string(kFaillockMaxInterval) + " by pam_faillock");
        v = kFaillockMaxInterval;
      }
    } else {
      return;
    }
    if (target == nullptr) {
      warnings->push_back(where + ": bad " + key + " value '" + value +
                          "' ignored (as pam_faillock does)");
      return;
    }
    SetInt(target, v, std::move(from));
  };
  std::string conf = linux_os::PamArgValue(e.line, "conf").value_or(kFaillockConf);
  auto text = view.ReadFile(conf);
  if (text.ok()) {
    for (const auto& setting : linux_os::ParseSecurityConf(*text)) {
      apply(setting.key, setting.value,
            Prov(view, conf, setting.key, setting.text, setting.line_no),
            conf + ":" + std::to_string(setting.line_no));
    }
  } else if (text.status().code() != Status::Code::kNotFound) {
    out.status = text.status();
  }
  for (const std::string& arg : e.line.args) {
    size_t eq = arg.find('=');
    if (eq == std::string::npos) continue;
    apply(arg.substr(0, eq), arg.substr(eq + 1), Prov(view, e, arg.substr(0, eq)), Where(e));
  }
  return out;
}

Lockout LockoutForStack(const SystemView& view, const NamedStack& ns,
                        std::vector<std::string>* warnings) {
  const PamStackEntry* faillock = nullptr;
  const PamStackEntry* tally = nullptr;
  for (const auto& e : ns.stack.entries) {
    std::string_view name = PamModuleName(e.line.module);
    if (name == "pam_faillock.so") {
      // The authfail line is the one that counts failures and locks; prefer it.
      if (faillock == nullptr || linux_os::PamHasFlag(e.line, "authfail")) faillock = &e;
    }
    if (tally == nullptr && (name == "pam_tally2.so" || name == "pam_tally.so")) tally = &e;
  }
  if (faillock != nullptr) return FaillockSettings(view, *faillock, warnings);
  Lockout out;
  if (tally != nullptr) {
    int64_t v = 0;
    std::string deny = linux_os::PamArgValue(tally->line, "deny").value_or("0");
    auto [p, ec] = std::from_chars(deny.data(), deny.data() + deny.size(), v);
    if (ec != std::errc() || p != deny.data() + deny.size() || v < 0) v = 0;
    SetInt(&out.deny, v, Prov(view, *tally, "deny"));
    return out;
  }
  SetInt(&out.deny, 0,
         Prov(view, ns.file, "deny",
              "no lockout module in " + ns.file + " (pam_faillock, pam_tally2)"));
  return out;
}

// Finds nullok on pam_unix in any of the stacks.
void FindNullok(const SystemView& view, const std::vector<NamedStack>& stacks, v1::BoolFact* out) {
  for (const auto& ns : stacks) {
    for (const auto& e : ns.stack.entries) {
      if (PamModuleName(e.line.module) != "pam_unix.so") continue;
      if (linux_os::PamHasFlag(e.line, "nullok") || linux_os::PamHasFlag(e.line, "nullok_secure")) {
        SetBool(out, true, Prov(view, e, "nullok"));
        return;
      }
    }
  }
}

// PASS_MAX_DAYS, PASS_MIN_DAYS, PASS_WARN_AGE and ENCRYPT_METHOD from /etc/login.defs, as
// shadow's getdef reads them: absent or not a number means the built-in default (-1 for the ages,
// login.defs(5)); ENCRYPT_METHOD absent means crypt's DES unless MD5_CRYPT_ENAB (recorded as "").
Status CollectLoginDefs(const SystemView& view, v1::PasswordPolicyEvidence* ev,
                        std::vector<std::string>* warnings) {
  constexpr const char* kDefs = "/etc/login.defs";
  const std::pair<const char*, v1::IntFact*> ages[] = {
      {"PASS_MAX_DAYS", ev->mutable_default_max_age_days()},
      {"PASS_MIN_DAYS", ev->mutable_default_min_age_days()},
      {"PASS_WARN_AGE", ev->mutable_default_warn_age_days()}};
  for (const auto& [key, fact] : ages) {
    SetInt(fact, -1, Prov(view, "default:shadow", key, std::string(key) + " not set"));
  }
  ev->mutable_encrypt_method()->set_value("");
  *ev->mutable_encrypt_method()->mutable_from() =
      Prov(view, "default:shadow", "ENCRYPT_METHOD", "ENCRYPT_METHOD not set");
  auto text = view.ReadFile(kDefs);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) return Status::Ok();
    return text.status();
  }
  const auto defs = linux_os::ParseLoginDefsLines(*text);
  for (const auto& [key, fact] : ages) {
    auto it = defs.find(key);
    if (it == defs.end()) continue;
    const std::string where = std::string(kDefs) + ":" + std::to_string(it->second.line);
    if (auto v = linux_os::LoginDefsNumber(it->second.value)) {
      SetInt(fact, *v, Prov(view, kDefs, key, it->second.raw, it->second.line));
    } else {
      // shadow logs "configuration error - cannot parse" and uses its default.
      SetInt(fact, -1,
             Prov(view, kDefs, key, it->second.raw + " (not a number: shadow uses its default, -1)",
                  it->second.line));
      warnings->push_back(where + ": " + key + " '" + it->second.value +
                          "' is not a number; shadow ignores it (-1, no limit)");
    }
  }
  if (auto it = defs.find("ENCRYPT_METHOD"); it != defs.end()) {
    ev->mutable_encrypt_method()->set_value(it->second.value);
    *ev->mutable_encrypt_method()->mutable_from() =
        Prov(view, kDefs, "ENCRYPT_METHOD", it->second.raw, it->second.line);
  }
  return Status::Ok();
}

Status CollectAccounts(const SystemView& view, v1::PasswordPolicyEvidence* ev) {
  auto humans = linux_os::ReadHumanUsers(view);
  if (!humans.ok()) return humans.status();
  auto passwd = view.ReadFile("/etc/passwd");
  if (!passwd.ok()) return passwd.status();
  std::vector<linux_os::PasswdEntry> accounts;
  // Every uid-0 account is root, whatever its name.
  for (auto& p : linux_os::ParsePasswd(*passwd)) {
    if (p.uid == 0) accounts.push_back(p);
  }
  for (auto& h : humans->users) accounts.push_back(h);
  auto shadow_text = view.ReadFile("/etc/shadow");
  if (!shadow_text.ok()) {
    const Status& st = shadow_text.status();
    if (st.code() == Status::Code::kPermissionDenied) {
      return Status::PermissionDenied(st.message() + " (run the agent as root)");
    }
    return st;
  }
  auto shadow = linux_os::ParseShadow(*shadow_text);
  std::set<std::string> done;
  for (const auto& a : accounts) {
    if (!done.insert(a.name).second) continue;
    auto it = std::find_if(shadow.begin(), shadow.end(),
                           [&](const linux_os::ShadowEntry& s) { return s.name == a.name; });
    if (it == shadow.end()) {
      ev->add_warnings("/etc/shadow: no entry for " + a.name +
                       " (pam_unix falls back to the /etc/passwd password field)");
      continue;
    }
    v1::AccountPassword* acc = ev->add_accounts();
    acc->set_user(a.name);
    acc->set_uid(a.uid);
    acc->set_empty_password(it->empty_password);
    acc->set_locked(it->locked);
    int64_t max_days = -1;
    if (it->max_days) {
      max_days = *it->max_days;
    } else {
      ev->add_warnings("/etc/shadow:" + std::to_string(it->line_no) + ": maximum age '" +
                       it->max_days_raw + "' for " + a.name + " is not a number");
    }
    SetInt(acc->mutable_max_age_days(), max_days,
           Prov(view, "/etc/shadow", a.name + ":max_days", it->max_days_raw, it->line_no));
  }
  return Status::Ok();
}

}  // namespace

v1::Evidence CollectPasswordPolicy(const SystemView& view) {
  v1::Evidence evidence;
  v1::PasswordPolicyEvidence* ev = evidence.mutable_password_policy();
  std::vector<std::string> warnings;

  auto pw_stacks = ReadStacks(view, std::begin(kPasswordStacks), std::end(kPasswordStacks),
                              "password", &warnings);
  if (!pw_stacks.ok()) {
    evidence.set_collection_error(pw_stacks.status().message());
    return evidence;
  }
  if (pw_stacks->empty()) {
    evidence.set_collection_error(
        "no PAM password stack found (/etc/pam.d/common-password, system-auth, password-auth)");
    return evidence;
  }
  QualitySettings file_settings = linux_os::PwqualityDefaults();
  if (Status st = LoadPwqualityFiles(view, &file_settings, &warnings); !st.ok()) {
    evidence.set_collection_error(st.message());
    return evidence;
  }
  bool first = true;
  for (const auto& ns : *pw_stacks) {
    PasswordFacts f = FactsForStack(view, ns, file_settings, &warnings);
    // The weakest stack is the effective policy for whoever logs in through it.
    if (first || !f.enforced.value()) *ev->mutable_quality_module_enforced() = f.enforced;
    if (first || f.min_length.value() < ev->min_length().value()) {
      *ev->mutable_min_length() = f.min_length;
    }
    if (first || f.min_classes.value() < ev->min_classes().value()) {
      *ev->mutable_min_classes() = f.min_classes;
    }
    first = false;
  }

  auto auth_stacks =
      ReadStacks(view, std::begin(kAuthStacks), std::end(kAuthStacks), "auth", &warnings);
  if (!auth_stacks.ok()) {
    evidence.set_collection_error(auth_stacks.status().message());
    return evidence;
  }
  if (auth_stacks->empty()) {
    SetInt(ev->mutable_max_failed_attempts(), 0,
           Prov(view, "/etc/pam.d/common-auth", "deny",
                "no lockout module: no PAM auth stack (common-auth, system-auth, password-auth)"));
  }
  first = true;
  for (const auto& ns : *auth_stacks) {
    Lockout lockout = LockoutForStack(view, ns, &warnings);
    if (!lockout.status.ok()) {
      evidence.set_collection_error(lockout.status.message());
      return evidence;
    }
    const v1::IntFact& deny = lockout.deny;
    const int64_t cur = ev->max_failed_attempts().value();
    // Weakest: no lockout anywhere beats any lockout; otherwise the most attempts allowed. The
    // unlock time and failure window reported are that stack's.
    if (first || deny.value() == 0 || (cur != 0 && deny.value() > cur)) {
      *ev->mutable_max_failed_attempts() = deny;
      ev->clear_lockout_unlock_seconds();
      ev->clear_lockout_fail_interval_seconds();
      if (lockout.unlock_time.has_from()) {
        *ev->mutable_lockout_unlock_seconds() = lockout.unlock_time;
        *ev->mutable_lockout_fail_interval_seconds() = lockout.fail_interval;
      }
    }
    first = false;
  }

  SetBool(ev->mutable_nullok(), false,
          Prov(view, auth_stacks->empty() ? pw_stacks->front().file : auth_stacks->front().file,
               "nullok", "pam_unix without nullok"));
  FindNullok(view, *auth_stacks, ev->mutable_nullok());
  if (!ev->nullok().value()) FindNullok(view, *pw_stacks, ev->mutable_nullok());

  if (Status st = CollectLoginDefs(view, ev, &warnings); !st.ok()) {
    evidence.set_collection_error(st.message());
    return evidence;
  }

  if (Status st = CollectAccounts(view, ev); !st.ok()) {
    evidence.set_collection_error(st.message());
    return evidence;
  }
  for (auto& w : warnings) ev->add_warnings(std::move(w));
  return evidence;
}

}  // namespace vigil::collectors

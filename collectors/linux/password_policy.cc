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
// - login.defs PASS_MAX_DAYS (absent: -1, "no limit", per login.defs(5)); /etc/shadow field 5.
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
                    const std::string& raw) {
  v1::Provenance p;
  p.set_source(source);
  p.set_key(key);
  p.set_raw(raw);
  p.set_user_can_override(UserWritable(view, source));
  return p;
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
void LoadPwqualityFiles(const SystemView& view, QualitySettings* s,
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
    warnings->push_back(entries.status().message());
  }
  files.push_back(kPwqualityConf);
  for (const std::string& file : files) {
    auto text = view.ReadFile(file);
    if (!text.ok()) {
      if (text.status().code() != Status::Code::kNotFound) {
        warnings->push_back(text.status().message() + " (libpwquality skips it too)");
      }
      continue;
    }
    for (const auto& setting : linux_os::ParseSecurityConf(*text)) {
      ApplyResult r = ApplyQualitySetting(s, setting.key, setting.value, file, setting.text);
      if (r == ApplyResult::kUnknownKey || r == ApplyResult::kBadValue) {
        // libpwquality stops reading here and skips every later file, main file included.
        warnings->push_back(file + ":" + std::to_string(setting.line_no) + ": '" + setting.text +
                            "' is " + (r == ApplyResult::kUnknownKey ? "unknown" : "invalid") +
                            "; libpwquality stops reading its configuration at this line");
        return;
      }
    }
  }
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
      ApplyResult r =
          ApplyQualitySetting(&s, key, value, quality->file, quality->line.text, cracklib);
      if (r == ApplyResult::kBadValue) {
        warnings->push_back(Where(*quality) + ": argument '" + arg + "' is invalid and ignored");
      }
    }
    const std::string module(PamModuleName(quality->line.module));
    if (s.enforcing.value != 0) {
      SetBool(&out.enforced, true, Prov(view, quality->file, module, quality->line.text));
      const int64_t shortest = linux_os::ShortestAcceptedLength(s);
      std::string raw = s.minlen.raw;
      if (linux_os::PositiveCreditSum(s) > 0) {
        std::string note = "minlen " + std::to_string(s.minlen.value) + " (" + s.minlen.source +
                           ") with positive credits " + CreditText(s) + " accepts passwords of " +
                           std::to_string(shortest) + " characters";
        raw += "; " + note;
        warnings->push_back(note);
      }
      SetInt(&out.min_length, shortest, Prov(view, s.minlen.source, "minlen", raw));
      const int64_t classes = linux_os::RequiredClasses(s);
      std::string class_source = s.minclass.source;
      std::string class_raw = s.minclass.raw;
      if (classes > s.minclass.value) {
        // The negative credits decide; name the first of them as the source.
        for (const auto* c : {&s.dcredit, &s.ucredit, &s.lcredit, &s.ocredit}) {
          if (c->value < 0) {
            class_source = c->source;
            break;
          }
        }
        class_raw += "; negative credits: " + CreditText(s);
      }
      SetInt(&out.min_classes, classes, Prov(view, class_source, "minclass", class_raw));
      return out;
    }
    SetBool(&out.enforced, false,
            Prov(view, s.enforcing.source, "enforcing",
                 s.enforcing.raw + " (" + module + " only warns)"));
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
        SetInt(&out.min_length, v, Prov(view, unix_entry->file, "minlen", unix_entry->line.text));
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

// pam_faillock's deny as it resolves it for one stack line.
v1::IntFact FaillockDeny(const SystemView& view, const PamStackEntry& e,
                         std::vector<std::string>* warnings) {
  v1::IntFact out;
  SetInt(&out, 3, Prov(view, "default:pam_faillock", "deny", "pam_faillock built-in deny=3"));
  std::string conf = linux_os::PamArgValue(e.line, "conf").value_or(kFaillockConf);
  auto text = view.ReadFile(conf);
  auto parse = [](const std::string& s, int64_t* v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
    return ec == std::errc() && p == s.data() + s.size() && *v >= 0 && *v <= 65535;
  };
  if (text.ok()) {
    for (const auto& setting : linux_os::ParseSecurityConf(*text)) {
      if (setting.key != "deny") continue;
      int64_t v = 0;
      if (parse(setting.value, &v)) {
        SetInt(&out, v, Prov(view, conf, "deny", setting.text));
      } else {
        warnings->push_back(conf + ":" + std::to_string(setting.line_no) + ": bad deny value '" +
                            setting.value + "' ignored (as pam_faillock does)");
      }
    }
  } else if (text.status().code() != Status::Code::kNotFound) {
    warnings->push_back(text.status().message());
  }
  for (const std::string& arg : e.line.args) {
    if (arg.rfind("deny=", 0) != 0) continue;
    int64_t v = 0;
    if (parse(arg.substr(5), &v)) {
      SetInt(&out, v, Prov(view, e.file, "deny", e.line.text));
    } else {
      warnings->push_back(Where(e) + ": bad argument '" + arg + "' ignored");
    }
  }
  return out;
}

v1::IntFact LockoutForStack(const SystemView& view, const NamedStack& ns,
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
  if (faillock != nullptr) return FaillockDeny(view, *faillock, warnings);
  v1::IntFact out;
  if (tally != nullptr) {
    int64_t v = 0;
    std::string deny = linux_os::PamArgValue(tally->line, "deny").value_or("0");
    auto [p, ec] = std::from_chars(deny.data(), deny.data() + deny.size(), v);
    if (ec != std::errc() || p != deny.data() + deny.size() || v < 0) v = 0;
    SetInt(&out, v, Prov(view, tally->file, "deny", tally->line.text));
    return out;
  }
  SetInt(&out, 0,
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
        SetBool(out, true, Prov(view, e.file, "nullok", e.line.text));
        return;
      }
    }
  }
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
           Prov(view, "/etc/shadow", a.name + ":max_days", it->max_days_raw));
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
  LoadPwqualityFiles(view, &file_settings, &warnings);
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
    v1::IntFact deny = LockoutForStack(view, ns, &warnings);
    const int64_t cur = ev->max_failed_attempts().value();
    // Weakest: no lockout anywhere beats any lockout; otherwise the most attempts allowed.
    if (first || deny.value() == 0 || (cur != 0 && deny.value() > cur)) {
      *ev->mutable_max_failed_attempts() = deny;
    }
    first = false;
  }

  SetBool(ev->mutable_nullok(), false,
          Prov(view, auth_stacks->empty() ? pw_stacks->front().file : auth_stacks->front().file,
               "nullok", "pam_unix without nullok"));
  FindNullok(view, *auth_stacks, ev->mutable_nullok());
  if (!ev->nullok().value()) FindNullok(view, *pw_stacks, ev->mutable_nullok());

  // PASS_MAX_DAYS: login.defs(5) says an absent value means -1 (no maximum).
  SetInt(ev->mutable_default_max_age_days(), -1,
         Prov(view, "default:shadow", "PASS_MAX_DAYS", "PASS_MAX_DAYS not set"));
  auto defs_text = view.ReadFile("/etc/login.defs");
  if (defs_text.ok()) {
    auto defs = linux_os::ParseLoginDefs(*defs_text);
    if (auto it = defs.find("PASS_MAX_DAYS"); it != defs.end()) {
      int64_t v = 0;
      const std::string& s = it->second;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc() && p == s.data() + s.size()) {
        SetInt(ev->mutable_default_max_age_days(), v,
               Prov(view, "/etc/login.defs", "PASS_MAX_DAYS", "PASS_MAX_DAYS " + s));
      } else {
        warnings.push_back("/etc/login.defs: PASS_MAX_DAYS '" + s + "' is not a number");
      }
    }
  } else if (defs_text.status().code() != Status::Code::kNotFound) {
    evidence.set_collection_error(defs_text.status().message());
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

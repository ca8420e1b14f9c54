// The screen_lock rule: every human user, on every installed desktop, gets a screen that locks
// with a password after at most max_idle_seconds. Anything the collector could not read makes the
// check ERROR rather than PASS.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "collectors/evaluate.h"
#include "collectors/text.h"

namespace vigil::collectors {
namespace {

std::string DesktopName(v1::Desktop d) {
  switch (d) {
    case v1::GNOME:
      return "GNOME";
    case v1::KDE:
      return "KDE";
    case v1::XFCE:
      return "Xfce";
    case v1::SWAY:
      return "sway";
    default:
      return "unknown desktop";
  }
}

// The setting's own name for messages: the KConfig key after "[Group] ", else the last dconf
// path segment.
std::string KeyName(const v1::Provenance& p) {
  const std::string& k = p.key();
  if (size_t group_end = k.rfind("] "); group_end != std::string::npos) {
    return k.substr(group_end + 2);
  }
  size_t slash = k.rfind('/');
  std::string name = slash == std::string::npos ? k : k.substr(slash + 1);
  return name.empty() ? "setting" : name;
}

std::string Source(const v1::Provenance& p) {
  if (p.source().empty()) return "an unknown source";
  return p.line() > 0 ? p.source() + ":" + std::to_string(p.line()) : p.source();
}

// Machines without a graphical session: idle shells must end (bash TMOUT), and users must not be
// able to lift the limit.
Verdict EvaluateShellTimeout(const v1::ScreenLockEvidence& e, const v1::ScreenLockPolicy& p) {
  const std::string limit = std::to_string(p.max_shell_timeout_seconds()) + " s";
  const std::string context = e.not_applicable_reason() + "; shell timeout: ";
  if (e.shell_timeout_errors_size() > 0) {
    std::vector<std::string> errs(e.shell_timeout_errors().begin(), e.shell_timeout_errors().end());
    return {v1::ERROR, context + "could not read " + Join(errs, "; ")};
  }
  if (!e.has_shell_timeout_seconds() || !e.has_shell_timeout_readonly()) {
    return {v1::ERROR, context + "no TMOUT evidence was collected"};
  }
  const auto& t = e.shell_timeout_seconds();
  const auto& ro = e.shell_timeout_readonly();
  const std::string raw = t.from().raw().empty() ? "" : " ('" + t.from().raw() + "')";
  if (t.value() <= 0) {
    std::string where = StartsWith(t.from().source(), "default:")
                            ? "TMOUT is not set in /etc/profile, /etc/profile.d/*.sh or "
                              "/etc/bash.bashrc"
                            : "TMOUT is unset or 0 at " + Source(t.from()) + raw;
    return {v1::FAIL, context + where + ": idle shells never end (limit " + limit + ")"};
  }
  std::vector<std::string> failures;
  if (t.value() > static_cast<int64_t>(p.max_shell_timeout_seconds())) {
    failures.push_back("TMOUT=" + std::to_string(t.value()) + " at " + Source(t.from()) + raw +
                       " exceeds " + limit);
  }
  if (!ro.value()) {
    failures.push_back("TMOUT=" + std::to_string(t.value()) + " at " + Source(t.from()) +
                       " is not readonly: a user can unset or raise it");
  }
  std::string notes =
      e.warnings_size() > 0 ? "; " + std::to_string(e.warnings_size()) + " warning(s)" : "";
  if (!failures.empty()) return {v1::FAIL, context + Join(failures, "; ") + notes};
  return {v1::PASS, context + "idle shells end after " + std::to_string(t.value()) +
                        " s (TMOUT at " + Source(t.from()) + ", readonly at " + Source(ro.from()) +
                        ")" + notes};
}

}  // namespace

Verdict EvaluateScreenLock(const v1::ScreenLockEvidence& e, const v1::ScreenLockPolicy& p) {
  if (!e.not_applicable_reason().empty()) {
    if (e.sessions_found_size() == 0 && p.max_shell_timeout_seconds() > 0) {
      return EvaluateShellTimeout(e, p);
    }
    return {v1::NOT_APPLICABLE, e.not_applicable_reason()};
  }
  if (e.unsupported_sessions_size() > 0) {
    std::vector<std::string> s(e.unsupported_sessions().begin(), e.unsupported_sessions().end());
    return {v1::ERROR, "cannot check the screen lock of installed session(s) " + Join(s, ", ") +
                           " (only GNOME, KDE, Xfce and sway are supported)"};
  }
  if (e.users_size() == 0) {
    return {v1::ERROR, "graphical sessions are installed but no user's settings were collected"};
  }

  std::vector<std::string> errors;
  for (const auto& u : e.users()) {
    const std::string who = u.user() + " (" + DesktopName(u.desktop()) + ")";
    for (const auto& err : u.errors()) errors.push_back(who + ": " + err);
    if (u.errors_size() == 0 &&
        (!u.has_idle_seconds() || !u.has_lock_enabled() || !u.has_lock_delay_seconds() ||
         !u.has_idle_activation_enabled() || !u.has_lock_screen_disabled())) {
      errors.push_back(who + ": incomplete evidence (a setting is missing)");
    }
  }
  if (!errors.empty())
    return {v1::ERROR, "could not read screen-lock settings: " + Join(errors, "; ")};

  std::vector<std::string> failures;
  std::vector<std::string> overridable;
  std::set<std::string> users;
  std::set<std::string> desktops;
  int64_t worst_idle = 0;
  int64_t worst_delay = 0;
  std::vector<std::string> paths;  // users whose screen locks via suspend
  for (const auto& u : e.users()) {
    const std::string who = u.user() + " (" + DesktopName(u.desktop()) + ")";
    users.insert(u.user());
    desktops.insert(DesktopName(u.desktop()));
    std::vector<std::string> open_keys;
    auto note = [&](const v1::Provenance& from) {
      if (from.user_can_override()) open_keys.push_back(KeyName(from));
    };

    const auto& disabled = u.lock_screen_disabled();
    if (u.locker() == "none") {
      // No locker runs at all; the individual settings say nothing more.
      failures.push_back(who + ": " + disabled.from().key() + " (" + disabled.from().raw() + ", " +
                         Source(disabled.from()) + "): the screen never locks");
      continue;
    }
    if (disabled.value()) {
      failures.push_back(who + ": " + KeyName(disabled.from()) + " from " +
                         Source(disabled.from()) + " makes locking the screen impossible");
    }
    // The shortest path to a locked screen may be suspend-on-idle; when it is and it is within
    // the limit, the screensaver settings do not decide the verdict.
    const bool has_eff = u.has_effective_lock_seconds();
    const auto& eff = u.effective_lock_seconds();
    if (has_eff && eff.from().key() == "suspend" && eff.value() > 0 && !disabled.value()) {
      if (eff.value() <= static_cast<int64_t>(p.max_idle_seconds())) {
        paths.push_back(who + " " + eff.from().raw());
        worst_idle = std::max(worst_idle, eff.value());
        if (eff.from().user_can_override()) open_keys.push_back("suspend settings");
        if (!open_keys.empty()) overridable.push_back(who + ": " + Join(open_keys, ", "));
        continue;
      }
      failures.push_back(who + ": " + eff.from().raw() + " exceeds " +
                         std::to_string(p.max_idle_seconds()) + " s");
    }
    if (has_eff && eff.from().key() == "none" && u.suspend_idle_seconds().value() > 0 &&
        !u.lock_on_suspend().value()) {
      failures.push_back(who + ": suspends after " +
                         std::to_string(u.suspend_idle_seconds().value()) + " s idle but " +
                         KeyName(u.lock_on_suspend().from()) + " false from " +
                         Source(u.lock_on_suspend().from()) + ": suspend does not lock");
    }
    const auto& activation = u.idle_activation_enabled();
    if (!activation.value()) {
      const std::string& raw = activation.from().raw();
      const std::string detail = raw.empty() || raw == "false" ? "" : " ('" + raw + "')";
      failures.push_back(who + ": " + KeyName(activation.from()) + " false from " +
                         Source(activation.from()) + detail +
                         ": idling never starts the screen lock");
    } else {
      note(activation.from());
    }
    const auto& idle = u.idle_seconds();
    if (idle.value() <= 0) {
      failures.push_back(who + ": " + KeyName(idle.from()) + " 0 (never) from " +
                         Source(idle.from()) + ", limit " + std::to_string(p.max_idle_seconds()) +
                         " s");
    } else if (idle.value() > static_cast<int64_t>(p.max_idle_seconds())) {
      failures.push_back(who + ": " + KeyName(idle.from()) + " " + std::to_string(idle.value()) +
                         " s from " + Source(idle.from()) + " exceeds " +
                         std::to_string(p.max_idle_seconds()) + " s");
    } else {
      note(idle.from());
      worst_idle = std::max(worst_idle, idle.value());
    }
    const auto& lock = u.lock_enabled();
    if (p.require_password()) {
      if (!lock.value()) {
        failures.push_back(who + ": " + KeyName(lock.from()) + " false from " +
                           Source(lock.from()) +
                           ": the screen blanks without locking, but a "
                           "password is required");
      } else {
        note(lock.from());
      }
    }
    const auto& delay = u.lock_delay_seconds();
    if (delay.value() > static_cast<int64_t>(p.max_lock_delay_seconds())) {
      failures.push_back(who + ": " + KeyName(delay.from()) + " " + std::to_string(delay.value()) +
                         " s from " + Source(delay.from()) + " exceeds " +
                         std::to_string(p.max_lock_delay_seconds()) + " s");
    } else {
      note(delay.from());
      worst_delay = std::max(worst_delay, delay.value());
    }
    if (!disabled.value()) note(disabled.from());
    if (!open_keys.empty()) overridable.push_back(who + ": " + Join(open_keys, ", "));
  }

  std::string notes;
  if (!overridable.empty()) {
    notes = "; compliant values the user can change (not locked): " + Join(overridable, "; ");
  }
  if (e.warnings_size() > 0) notes += "; " + std::to_string(e.warnings_size()) + " warning(s)";
  if (!failures.empty()) return {v1::FAIL, Join(failures, "; ") + notes};

  std::vector<std::string> d(desktops.begin(), desktops.end());
  std::string reason = std::to_string(users.size()) + (users.size() == 1 ? " user" : " users") +
                       " on " + Join(d, ", ") + ": screen locks after at most " +
                       std::to_string(worst_idle) + " s idle";
  if (p.require_password()) {
    reason += ", password required within " + std::to_string(worst_delay) + " s";
  }
  if (!paths.empty()) reason += " (" + Join(paths, "; ") + ")";
  return {v1::PASS, reason + notes};
}

}  // namespace vigil::collectors

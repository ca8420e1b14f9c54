// EvaluateScreenLock: the rule alone, on hand-written evidence.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "collectors/evaluate.h"

namespace vigil::collectors {
namespace {

v1::Provenance From(const std::string& source, const std::string& key, bool locked) {
  v1::Provenance p;
  p.set_source(source);
  p.set_key(key);
  p.set_locked(locked);
  p.set_user_can_override(!locked);
  return p;
}

// A compliant GNOME user: everything locked in /etc/dconf/db/local.
v1::UserScreenLock GoodGnomeUser(const std::string& name) {
  const std::string db = "/etc/dconf/db/local";
  v1::UserScreenLock u;
  u.set_user(name);
  u.set_uid(1000);
  u.set_desktop(v1::GNOME);
  u.mutable_idle_seconds()->set_value(300);
  *u.mutable_idle_seconds()->mutable_from() =
      From(db, "/org/gnome/desktop/session/idle-delay", true);
  u.mutable_lock_enabled()->set_value(true);
  *u.mutable_lock_enabled()->mutable_from() =
      From(db, "/org/gnome/desktop/screensaver/lock-enabled", true);
  u.mutable_lock_delay_seconds()->set_value(0);
  *u.mutable_lock_delay_seconds()->mutable_from() =
      From(db, "/org/gnome/desktop/screensaver/lock-delay", true);
  u.mutable_idle_activation_enabled()->set_value(true);
  *u.mutable_idle_activation_enabled()->mutable_from() =
      From(db, "/org/gnome/desktop/screensaver/idle-activation-enabled", true);
  u.mutable_lock_screen_disabled()->set_value(false);
  *u.mutable_lock_screen_disabled()->mutable_from() =
      From(db, "/org/gnome/desktop/lockdown/disable-lock-screen", true);
  return u;
}

// Makes `u` lock via suspend after `seconds` (the screensaver path set to never).
void ViaSuspend(v1::UserScreenLock* u, int64_t seconds) {
  u->mutable_idle_seconds()->set_value(0);
  auto* eff = u->mutable_effective_lock_seconds();
  eff->set_value(seconds);
  eff->mutable_from()->set_key("suspend");
  eff->mutable_from()->set_source("/etc/dconf/db/local");
  eff->mutable_from()->set_locked(true);
  eff->mutable_from()->set_raw("locks via suspend after " + std::to_string(seconds) +
                               " s (sleep-inactive-ac-type 'suspend' from /etc/dconf/db/local)");
}

v1::ScreenLockPolicy Policy(uint32_t max_idle, bool password, uint32_t max_delay) {
  v1::ScreenLockPolicy p;
  p.set_max_idle_seconds(max_idle);
  p.set_require_password(password);
  p.set_max_lock_delay_seconds(max_delay);
  return p;
}

TEST_CASE("EvaluateScreenLock") {
  struct Row {
    std::string name;
    std::function<void(v1::ScreenLockEvidence*)> edit;
    v1::ScreenLockPolicy policy;
    v1::CheckStatus status;
    std::vector<std::string> reason_contains;
  };
  const auto strict = Policy(900, true, 5);
  const std::vector<Row> rows = {
      {"all locked and compliant",
       [](v1::ScreenLockEvidence*) {},
       strict,
       v1::PASS,
       {"2 users on GNOME: screen locks after at most 300 s idle, password required within 0 s"}},
      {"not applicable",
       [](v1::ScreenLockEvidence* e) {
         e->clear_users();
         e->set_not_applicable_reason("no graphical session installed");
       },
       strict,
       v1::NOT_APPLICABLE,
       {"no graphical session installed"}},
      {"unsupported session",
       [](v1::ScreenLockEvidence* e) {
         e->add_unsupported_sessions("/usr/share/xsessions/xfce.desktop");
       },
       strict,
       v1::ERROR,
       {"xfce.desktop"}},
      {"sessions but no users",
       [](v1::ScreenLockEvidence* e) { e->clear_users(); },
       strict,
       v1::ERROR,
       {"no user's settings"}},
      {"user error beats failures",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->add_errors(
             "dconf database /home/alice/.config/dconf/user is unreadable");
         e->mutable_users(1)->mutable_idle_seconds()->set_value(0);
       },
       strict,
       v1::ERROR,
       {"alice (GNOME): dconf database /home/alice/.config/dconf/user"}},
      {"missing fact",
       [](v1::ScreenLockEvidence* e) { e->mutable_users(0)->clear_lock_enabled(); },
       strict,
       v1::ERROR,
       {"alice (GNOME): incomplete evidence"}},
      {"idle too long",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_idle_seconds()->set_value(1800);
       },
       strict,
       v1::FAIL,
       {"alice (GNOME): idle-delay 1800 s from /etc/dconf/db/local exceeds 900 s"}},
      {"idle exactly at the limit",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_idle_seconds()->set_value(900);
       },
       strict,
       v1::PASS,
       {"at most 900 s"}},
      {"idle never",
       [](v1::ScreenLockEvidence* e) {
         auto* f = e->mutable_users(1)->mutable_idle_seconds();
         f->set_value(0);
         *f->mutable_from() =
             From("/home/bob/.config/dconf/user", "/org/gnome/desktop/session/idle-delay", false);
       },
       strict,
       v1::FAIL,
       {"bob (GNOME): idle-delay 0 (never) from /home/bob/.config/dconf/user"}},
      {"lock disabled",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_lock_enabled()->set_value(false);
       },
       strict,
       v1::FAIL,
       {"alice (GNOME): lock-enabled false from /etc/dconf/db/local"}},
      {"lock disabled but no password required",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_lock_enabled()->set_value(false);
       },
       Policy(900, false, 5),
       v1::PASS,
       {"screen locks after at most 300 s idle"}},
      {"lock screen impossible",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_lock_screen_disabled()->set_value(true);
       },
       strict,
       v1::FAIL,
       {"disable-lock-screen from /etc/dconf/db/local makes locking"}},
      {"idle activation off",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(1)->mutable_idle_activation_enabled()->set_value(false);
       },
       strict,
       v1::FAIL,
       {"bob (GNOME): idle-activation-enabled false"}},
      {"lock delay too long",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_lock_delay_seconds()->set_value(30);
       },
       strict,
       v1::FAIL,
       {"alice (GNOME): lock-delay 30 s from /etc/dconf/db/local exceeds 5 s"}},
      {"several failures are all named",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->mutable_idle_seconds()->set_value(1000);
         e->mutable_users(1)->mutable_lock_delay_seconds()->set_value(60);
       },
       strict,
       v1::FAIL,
       {"alice (GNOME): idle-delay 1000 s", "bob (GNOME): lock-delay 60 s"}},
      {"user-overridable compliant value is noted",
       [](v1::ScreenLockEvidence* e) {
         *e->mutable_users(0)->mutable_idle_seconds()->mutable_from() = From(
             "default:gsettings-desktop-schemas", "/org/gnome/desktop/session/idle-delay", false);
       },
       strict,
       v1::PASS,
       {"user can change (not locked): alice (GNOME): idle-delay"}},
      {"KDE key names",
       [](v1::ScreenLockEvidence* e) {
         auto* u = e->mutable_users(1);
         u->set_desktop(v1::KDE);
         u->mutable_idle_seconds()->set_value(3600);
         *u->mutable_idle_seconds()->mutable_from() =
             From("/home/bob/.config/kscreenlockerrc", "[Daemon] Timeout", false);
       },
       strict,
       v1::FAIL,
       {"bob (KDE): Timeout 3600 s from /home/bob/.config/kscreenlockerrc exceeds 900 s"}},
      {"locks via suspend within the limit",
       [](v1::ScreenLockEvidence* e) { ViaSuspend(e->mutable_users(0), 600); },
       strict,
       v1::PASS,
       {"alice (GNOME) locks via suspend after 600 s (sleep-inactive-ac-type"}},
      {"suspend path longer than the limit",
       [](v1::ScreenLockEvidence* e) { ViaSuspend(e->mutable_users(0), 1200); },
       strict,
       v1::FAIL,
       {"alice (GNOME): locks via suspend after 1200 s", "exceeds 900 s",
        "alice (GNOME): idle-delay 0 (never)"}},
      {"suspend path does not help when locking is impossible",
       [](v1::ScreenLockEvidence* e) {
         ViaSuspend(e->mutable_users(0), 300);
         e->mutable_users(0)->mutable_lock_screen_disabled()->set_value(true);
       },
       strict,
       v1::FAIL,
       {"makes locking the screen impossible"}},
      {"Xfce and sway are named",
       [](v1::ScreenLockEvidence* e) {
         e->mutable_users(0)->set_desktop(v1::XFCE);
         e->mutable_users(1)->set_desktop(v1::SWAY);
         e->mutable_users(1)->mutable_idle_seconds()->set_value(0);
       },
       strict,
       v1::FAIL,
       {"bob (sway): idle-delay 0 (never)"}},
      {"line numbers are shown",
       [](v1::ScreenLockEvidence* e) {
         auto* f = e->mutable_users(0)->mutable_idle_seconds();
         f->set_value(3600);
         f->mutable_from()->set_source("/etc/xdg/kscreenlockerrc");
         f->mutable_from()->set_line(7);
       },
       strict,
       v1::FAIL,
       {"3600 s from /etc/xdg/kscreenlockerrc:7 exceeds"}},
      {"warnings are counted",
       [](v1::ScreenLockEvidence* e) { e->add_warnings("keyfile newer than database"); },
       strict,
       v1::PASS,
       {"1 warning(s)"}},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    v1::ScreenLockEvidence e;
    e.add_sessions_found("/usr/share/xsessions/gnome.desktop");
    *e.add_users() = GoodGnomeUser("alice");
    *e.add_users() = GoodGnomeUser("bob");
    r.edit(&e);
    Verdict v = EvaluateScreenLock(e, r.policy);
    INFO("reason: " << v.reason);
    CHECK(v.status == r.status);
    for (const auto& text : r.reason_contains) {
      CHECK_MESSAGE(v.reason.find(text) != std::string::npos, "reason lacks: " << text);
    }
  }
}

TEST_CASE("EvaluateScreenLock: shell timeout without a graphical session") {
  struct Row {
    std::string name;
    std::function<void(v1::ScreenLockEvidence*)> edit;
    uint32_t max_shell;
    v1::CheckStatus status;
    std::vector<std::string> reason_contains;
  };
  auto set = [](v1::ScreenLockEvidence* e, int64_t seconds, bool readonly) {
    auto* t = e->mutable_shell_timeout_seconds();
    t->set_value(seconds);
    t->mutable_from()->set_source("/etc/profile.d/tmout.sh");
    t->mutable_from()->set_line(3);
    t->mutable_from()->set_raw("TMOUT=" + std::to_string(seconds));
    auto* ro = e->mutable_shell_timeout_readonly();
    ro->set_value(readonly);
    ro->mutable_from()->set_source(readonly ? "/etc/profile.d/tmout.sh" : "default:bash");
    ro->mutable_from()->set_line(readonly ? 4 : 0);
  };
  const std::vector<Row> rows = {
      {"not required",
       [&](v1::ScreenLockEvidence* e) { set(e, 600, true); },
       0,
       v1::NOT_APPLICABLE,
       {"no graphical session installed"}},
      {"readonly within the limit",
       [&](v1::ScreenLockEvidence* e) { set(e, 600, true); },
       900,
       v1::PASS,
       {"idle shells end after 600 s (TMOUT at /etc/profile.d/tmout.sh:3, readonly at "
        "/etc/profile.d/tmout.sh:4)"}},
      {"exactly the limit",
       [&](v1::ScreenLockEvidence* e) { set(e, 900, true); },
       900,
       v1::PASS,
       {"after 900 s"}},
      {"too long",
       [&](v1::ScreenLockEvidence* e) { set(e, 1800, true); },
       900,
       v1::FAIL,
       {"TMOUT=1800 at /etc/profile.d/tmout.sh:3 ('TMOUT=1800') exceeds 900 s"}},
      {"not readonly",
       [&](v1::ScreenLockEvidence* e) { set(e, 600, false); },
       900,
       v1::FAIL,
       {"is not readonly: a user can unset or raise it"}},
      {"not set",
       [&](v1::ScreenLockEvidence* e) {
         set(e, 0, false);
         e->mutable_shell_timeout_seconds()->mutable_from()->set_source("default:bash");
         e->mutable_shell_timeout_seconds()->mutable_from()->set_line(0);
       },
       900,
       v1::FAIL,
       {"TMOUT is not set in /etc/profile", "idle shells never end"}},
      {"unset at a line",
       [&](v1::ScreenLockEvidence* e) { set(e, 0, false); },
       900,
       v1::FAIL,
       {"TMOUT is unset or 0 at /etc/profile.d/tmout.sh:3"}},
      {"unreadable file",
       [&](v1::ScreenLockEvidence* e) {
         set(e, 600, true);
         e->add_shell_timeout_errors("cannot read /etc/bash.bashrc: permission denied");
       },
       900,
       v1::ERROR,
       {"could not read cannot read /etc/bash.bashrc"}},
      {"no evidence", [](v1::ScreenLockEvidence*) {}, 900, v1::ERROR, {"no TMOUT evidence"}},
      {"a desktop is installed: the screen rules apply instead",
       [&](v1::ScreenLockEvidence* e) {
         set(e, 0, false);
         e->clear_not_applicable_reason();
         e->add_sessions_found("/usr/share/xsessions/gnome.desktop");
         *e->add_users() = GoodGnomeUser("alice");
       },
       900,
       v1::PASS,
       {"screen locks after at most 300 s"}},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    v1::ScreenLockEvidence e;
    e.set_not_applicable_reason("no graphical session installed");
    r.edit(&e);
    auto policy = Policy(900, true, 5);
    policy.set_max_shell_timeout_seconds(r.max_shell);
    Verdict v = EvaluateScreenLock(e, policy);
    INFO("reason: " << v.reason);
    CHECK(v.status == r.status);
    for (const auto& text : r.reason_contains) {
      CHECK_MESSAGE(v.reason.find(text) != std::string::npos, "reason lacks: " << text);
    }
  }
}

}  // namespace
}  // namespace vigil::collectors

// CollectScreenLock + EvaluateScreenLock on fixture trees (tests/fixtures/screen_lock/<case>).
// Each case is copied to a temporary root and its dconf keyfile directories are compiled with the
// real `dconf compile`, so the collector reads the same GVDB files dconf itself would.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"
#include "common/temp_dir.h"

namespace vigil::collectors {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDconf = "/usr/bin/dconf";

std::string Quote(const fs::path& p) { return "'" + p.string() + "'"; }

// Compiles every NAME.d keyfile directory below `dir` into NAME, unless it holds ".no-compile".
void CompileKeyfileDirs(const fs::path& dir) {
  if (!fs::is_directory(dir)) return;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    if (!entry.is_directory() || p.extension() != ".d") continue;
    if (fs::exists(p / ".no-compile")) continue;
    fs::path out = p.parent_path() / p.stem();
    std::string cmd = std::string(kDconf) + " compile " + Quote(out) + " " + Quote(p);
    INFO("running: " << cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
}

// A temporary copy of one fixture case with its dconf databases compiled; removed on destruction.
class FixtureRoot {
 public:
  explicit FixtureRoot(const std::string& name) : root_(dir_.path()) {
    REQUIRE_MESSAGE(fs::exists(kDconf),
                    "dconf is required to compile GVDB fixtures (apt-get install dconf-cli)");
    fs::path src = fs::path(VIGIL_FIXTURES_DIR) / "screen_lock" / name;
    REQUIRE_MESSAGE(fs::is_directory(src), "missing fixture " << src);
    fs::copy(src, root_, fs::copy_options::recursive);
    CompileKeyfileDirs(root_ / "etc/dconf/db");
    if (fs::is_directory(root_ / "home")) {
      for (const auto& home : fs::directory_iterator(root_ / "home")) {
        CompileKeyfileDirs(home.path() / ".config/dconf");
      }
    }
  }
  const fs::path& path() const { return root_; }

 private:
  TempDir dir_{"vigil-screen-lock"};  // first: root_ is its path
  fs::path root_;
};

v1::ScreenLockPolicy StrictPolicy() {
  v1::ScreenLockPolicy p;
  p.set_max_idle_seconds(900);
  p.set_require_password(true);
  p.set_max_lock_delay_seconds(5);
  return p;
}

const v1::UserScreenLock* FindUser(const v1::ScreenLockEvidence& e, const std::string& user,
                                   v1::Desktop desktop) {
  for (const auto& u : e.users()) {
    if (u.user() == user && u.desktop() == desktop) return &u;
  }
  return nullptr;
}

bool AnyWarningContains(const v1::ScreenLockEvidence& e, const std::string& text) {
  for (const auto& w : e.warnings()) {
    if (w.find(text) != std::string::npos) return true;
  }
  return false;
}

struct Case {
  std::string name;
  v1::CheckStatus status;
  std::vector<std::string> reason_contains;
  std::function<void(const v1::ScreenLockEvidence&)> check;
};

const std::string kSystemDb = "/etc/dconf/db/local";
const std::string kAliceDb = "/home/alice/.config/dconf/user";
const std::string kSchemaDefault = "default:gsettings-desktop-schemas";
const std::string kXfceSystem = "/etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml";
const std::string kXfpmSystem = "/etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-power-manager.xml";

TEST_CASE("CollectScreenLock + EvaluateScreenLock on fixture trees") {
  const std::vector<Case> cases = {
      {"no_desktop",
       v1::NOT_APPLICABLE,
       {"no graphical session installed"},
       [](const v1::ScreenLockEvidence& e) {
         CHECK(e.users_size() == 0);
         CHECK(e.sessions_found_size() == 0);
       }},
      {"gnome_system_locked",
       v1::PASS,
       {"2 users on GNOME: screen locks after at most 600 s idle", "not locked"},
       [](const v1::ScreenLockEvidence& e) {
         CHECK(e.sessions_found_size() == 2);
         REQUIRE(e.users_size() == 2);  // alice and bob; root, daemons and nobody are not human
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK(alice->uid() == 1000);
         CHECK(alice->idle_seconds().value() == 600);
         CHECK(alice->idle_seconds().from().source() == kSystemDb);
         CHECK(alice->idle_seconds().from().key() == "/org/gnome/desktop/session/idle-delay");
         CHECK(alice->idle_seconds().from().raw() == "uint32 600");
         CHECK(alice->idle_seconds().from().locked());
         CHECK_FALSE(alice->idle_seconds().from().user_can_override());
         CHECK(alice->lock_enabled().value());
         CHECK(alice->lock_enabled().from().source() == kSystemDb);
         CHECK_FALSE(alice->lock_enabled().from().locked());
         CHECK(alice->lock_enabled().from().user_can_override());
         CHECK(alice->lock_delay_seconds().value() == 0);
         CHECK(alice->idle_activation_enabled().value());
         CHECK(alice->idle_activation_enabled().from().source() == kSchemaDefault);
         CHECK_FALSE(alice->lock_screen_disabled().value());
         CHECK(alice->errors_size() == 0);
       }},
      {"gnome_user_override",
       v1::FAIL,
       {"alice (GNOME): idle-delay 0 (never) from /home/alice/.config/dconf/user"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK(alice->idle_seconds().value() == 0);
         CHECK(alice->idle_seconds().from().source() == kAliceDb);
         CHECK(alice->idle_seconds().from().user_can_override());
         const auto* bob = FindUser(e, "bob", v1::GNOME);
         REQUIRE(bob != nullptr);
         CHECK(bob->idle_seconds().value() == 600);  // bob has no user database
         CHECK(bob->idle_seconds().from().source() == kSystemDb);
       }},
      {"gnome_user_override_locked",
       v1::PASS,
       {"screen locks after at most 600 s"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         // The user database says 0, but the system lock makes dconf skip it.
         CHECK(alice->idle_seconds().value() == 600);
         CHECK(alice->idle_seconds().from().source() == kSystemDb);
         CHECK(alice->idle_seconds().from().locked());
         CHECK_FALSE(alice->idle_seconds().from().user_can_override());
       }},
      {"gnome_lock_disabled",
       v1::FAIL,
       {"alice (GNOME): lock-enabled false from /etc/dconf/db/local", "bob (GNOME)"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK_FALSE(alice->lock_enabled().value());
         CHECK(alice->idle_seconds().value() == 300);
         CHECK(alice->idle_seconds().from().source() == kSchemaDefault);
       }},
      {"gnome_no_profile",
       v1::PASS,
       {"screen locks after at most 300 s"},
       [](const v1::ScreenLockEvidence& e) {
         // Without a profile dconf uses only user-db:user; /etc/dconf/db/local (3600) is ignored.
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK(alice->idle_seconds().value() == 120);
         CHECK(alice->idle_seconds().from().source() == kAliceDb);
         CHECK(alice->idle_seconds().from().user_can_override());
         const auto* bob = FindUser(e, "bob", v1::GNOME);
         REQUIRE(bob != nullptr);
         CHECK(bob->idle_seconds().value() == 300);
         CHECK(bob->idle_seconds().from().source() == kSchemaDefault);
         CHECK(bob->idle_seconds().from().raw() == "uint32 300");
         CHECK(bob->idle_seconds().from().user_can_override());
       }},
      {"gnome_schema_override",
       v1::PASS,
       {"screen locks after at most 240 s", "password required within 2 s"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* bob = FindUser(e, "bob", v1::GNOME);
         REQUIRE(bob != nullptr);
         CHECK(bob->idle_seconds().value() == 240);  // 90_corp beats 10_vendor
         CHECK(bob->idle_seconds().from().source() ==
               "/usr/share/glib-2.0/schemas/90_corp.gschema.override");
         CHECK(bob->lock_delay_seconds().value() == 2);  // from the [schema:GNOME] group
         CHECK(bob->lock_enabled().from().source() == kSchemaDefault);
       }},
      {"gnome_corrupt_user_db",
       v1::ERROR,
       {"alice (GNOME): dconf database /home/alice/.config/dconf/user is unreadable"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK(alice->errors_size() >= 1);
         const auto* bob = FindUser(e, "bob", v1::GNOME);
         REQUIRE(bob != nullptr);
         CHECK(bob->errors_size() == 0);
       }},
      {"kde_immutable",
       v1::PASS,
       {"screen locks after at most 300 s", "alice (KDE): Autolock, Lock, LockGrace"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::KDE);
         REQUIRE(alice != nullptr);
         CHECK(FindUser(e, "alice", v1::GNOME) == nullptr);
         CHECK(alice->idle_seconds().value() == 300);  // Timeout[$i]=5 beats the user's 60
         CHECK(alice->idle_seconds().from().source() == "/etc/xdg/kscreenlockerrc");
         CHECK(alice->idle_seconds().from().raw() == "Timeout[$i]=5");
         CHECK(alice->idle_seconds().from().locked());
         CHECK_FALSE(alice->idle_seconds().from().user_can_override());
         CHECK(alice->lock_delay_seconds().value() == 3);  // not immutable: the user's value
         CHECK(alice->lock_delay_seconds().from().source() ==
               "/home/alice/.config/kscreenlockerrc");
         CHECK(alice->idle_activation_enabled().value());
         CHECK(alice->idle_activation_enabled().from().source() == "default:kscreenlocker");
         CHECK_FALSE(alice->lock_screen_disabled().value());
       }},
      {"kde_autolock_off",
       v1::FAIL,
       {"alice (KDE): Autolock false from /home/alice/.config/kscreenlockerrc"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* bob = FindUser(e, "bob", v1::KDE);
         REQUIRE(bob != nullptr);
         CHECK(bob->idle_activation_enabled().value());
       }},
      {"kde_fractional",
       v1::PASS,
       {"screen locks after at most 150 s"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::KDE);
         REQUIRE(alice != nullptr);
         CHECK(alice->idle_seconds().value() == 150);
         CHECK(alice->idle_seconds().from().locked());  // [Daemon][$i]
         CHECK(AnyWarningContains(e, "Timeout=2.5 is not a whole number"));
       }},
      {"gnome_suspend_path",
       v1::FAIL,
       {"bob (GNOME): idle-delay 0 (never)",
        "bob (GNOME): suspends after 600 s idle but ubuntu-lock-on-suspend false from "
        "/home/bob/.config/dconf/user: suspend does not lock"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK(alice->suspend_idle_seconds().value() == 600);
         CHECK(alice->suspend_idle_seconds().from().locked());
         CHECK(alice->lock_on_suspend().value());
         CHECK(alice->lock_on_suspend().from().source() == kSchemaDefault);
         CHECK(alice->effective_lock_seconds().value() == 600);
         CHECK(alice->effective_lock_seconds().from().key() == "suspend");
         CHECK(alice->effective_lock_seconds().from().raw().find(
                   "locks via suspend after 600 s (sleep-inactive-ac-type 'suspend' from "
                   "/etc/dconf/db/local") == 0);
         CHECK(alice->effective_grace_seconds().value() == 0);
         const auto* bob = FindUser(e, "bob", v1::GNOME);
         REQUIRE(bob != nullptr);
         CHECK_FALSE(bob->lock_on_suspend().value());  // ubuntu-lock-on-suspend=false
         CHECK(bob->lock_on_suspend().from().source() == "/home/bob/.config/dconf/user");
         CHECK(bob->effective_lock_seconds().value() == 0);
         CHECK(bob->effective_lock_seconds().from().raw() ==
               "never locks on idle: idle time is 0 (never), suspend does not lock");
       }},
      {"gnome_suspend_default",
       v1::FAIL,
       {"alice (GNOME): idle-delay 0 (never)"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::GNOME);
         REQUIRE(alice != nullptr);
         CHECK(alice->suspend_idle_seconds().value() == 0);
         CHECK(alice->suspend_idle_seconds().from().raw().find("not credited") !=
               std::string::npos);
         CHECK(alice->effective_lock_seconds().from().key() == "none");
       }},
      {"kde_suspend_path",
       v1::FAIL,
       {"bob (KDE): Autolock false from /etc/xdg/kscreenlockerrc:3",
        "bob (KDE): suspends after 480 s idle but LockOnResume false from "
        "/home/bob/.config/kscreenlockerrc:2"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::KDE);
         REQUIRE(alice != nullptr);
         CHECK(alice->suspend_idle_seconds().value() == 480);
         CHECK(alice->suspend_idle_seconds().from().source() ==
               "/home/alice/.config/powermanagementprofilesrc");
         CHECK(alice->suspend_idle_seconds().from().line() == 11);
         CHECK(alice->effective_lock_seconds().value() == 480);
         CHECK(alice->effective_lock_seconds().from().key() == "suspend");
         CHECK(alice->locker() == "kscreenlocker");
         const auto* bob = FindUser(e, "bob", v1::KDE);
         REQUIRE(bob != nullptr);
         CHECK_FALSE(bob->lock_on_suspend().value());
         CHECK(bob->lock_on_suspend().from().line() == 2);
         CHECK(bob->effective_lock_seconds().value() == 0);
         const auto* carol = FindUser(e, "carol", v1::KDE);
         REQUIRE(carol != nullptr);
         CHECK(carol->suspend_idle_seconds().value() == 0);  // no suspendType: not credited
         CHECK(carol->suspend_idle_seconds().from().raw() ==
               "idleTime=300000 with no suspendType (not credited)");
       }},
      {"xfce_screensaver_locked",
       v1::PASS,
       {"2 users on Xfce: screen locks after at most 600 s idle, password required within 0 s"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::XFCE);
         REQUIRE(alice != nullptr);
         CHECK(alice->locker() == "xfce4-screensaver");
         // The channel is locked for everyone: alice's 120 minutes and lock=false are ignored.
         CHECK(alice->idle_seconds().value() == 600);
         CHECK(alice->idle_seconds().from().source() == kXfceSystem);
         CHECK(alice->idle_seconds().from().line() == 7);
         CHECK(alice->idle_seconds().from().locked());
         CHECK(alice->lock_enabled().value());
         CHECK(alice->lock_delay_seconds().value() == 0);
         CHECK(alice->lock_delay_seconds().from().source() == "default:xfce4-screensaver");
         CHECK(alice->lock_delay_seconds().from().locked());  // locked without a value
         CHECK(alice->effective_lock_seconds().value() == 600);
         CHECK(alice->effective_lock_seconds().from().key() == "screensaver");
       }},
      {"xfce_user_override",
       v1::FAIL,
       {"alice (Xfce): delay 1800 s from /home/alice/.config/xfce4/xfconf/xfce-perchannel-xml/"
        "xfce4-screensaver.xml:6 exceeds 900 s",
        "alice (Xfce): delay 120 s from"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* bob = FindUser(e, "bob", v1::XFCE);
         REQUIRE(bob != nullptr);
         CHECK(bob->idle_seconds().value() == 300);  // locked for @staff, bob is in staff
         CHECK(bob->idle_seconds().from().locked());
         CHECK(bob->idle_seconds().from().source() == kXfceSystem);
         const auto* alice = FindUser(e, "alice", v1::XFCE);
         REQUIRE(alice != nullptr);
         CHECK_FALSE(alice->idle_seconds().from().locked());
       }},
      {"xfce_light_locker",
       v1::PASS,
       {"2 users on Xfce: screen locks after at most 720 s idle, password required within 5 s"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::XFCE);
         REQUIRE(alice != nullptr);
         CHECK(alice->errors_size() == 0);
         CHECK(alice->locker() == "light-locker");
         // The X screensaver timeout comes from xfce4-power-manager's blank-on-ac (minutes).
         CHECK(alice->idle_seconds().value() == 720);
         CHECK(alice->idle_seconds().from().source() == kXfpmSystem);
         CHECK(alice->idle_seconds().from().line() == 5);
         CHECK(alice->idle_seconds().from().key() == "/xfce4-power-manager/blank-on-ac");
         CHECK(alice->idle_seconds().from().user_can_override());
         CHECK(alice->idle_activation_enabled().value());  // no presentation mode
         CHECK(alice->idle_activation_enabled().from().source() == "default:xfce4-power-manager");
         // lock-after-screensaver: nothing sets it, upstream's schema default of 5 s applies.
         CHECK(alice->lock_enabled().value());
         CHECK(alice->lock_delay_seconds().value() == 5);
         CHECK(alice->lock_delay_seconds().from().source() == "default:light-locker");
         CHECK(alice->lock_delay_seconds().from().key() ==
               "/apps/light-locker/lock-after-screensaver");
         CHECK(alice->lock_on_suspend().value());
         CHECK(alice->lock_on_suspend().from().source() == "default:light-locker (build option)");
         CHECK(alice->effective_lock_seconds().value() == 720);
       }},
      {"xfce_light_locker_never",
       v1::FAIL,
       {"alice (Xfce): blank-on-ac 0 (never) from /home/alice/.config/xfce4/xfconf/"
        "xfce-perchannel-xml/xfce4-power-manager.xml:4"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::XFCE);
         REQUIRE(alice != nullptr);
         CHECK(alice->idle_seconds().value() == 0);
         CHECK(alice->effective_lock_seconds().value() == 0);
         const auto* bob = FindUser(e, "bob", v1::XFCE);
         REQUIRE(bob != nullptr);
         CHECK(bob->idle_seconds().value() == 720);  // only alice's file says never
       }},
      {"xfce_light_locker_dconf",
       v1::FAIL,
       {"alice (Xfce): lock-after-screensaver 30 s from /home/alice/.config/dconf/user exceeds "
        "5 s"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::XFCE);
         REQUIRE(alice != nullptr);
         CHECK(alice->lock_delay_seconds().value() == 30);
         CHECK(alice->lock_delay_seconds().from().source() == kAliceDb);
         CHECK(alice->lock_delay_seconds().from().raw() == "uint32 30");
         CHECK(alice->lock_delay_seconds().from().user_can_override());
         CHECK(alice->lock_enabled().from().raw().find("late-locking false from " + kAliceDb) !=
               std::string::npos);
         // bob's own autostart entry passes --lock-after-screensaver, which beats GSettings.
         const auto* bob = FindUser(e, "bob", v1::XFCE);
         REQUIRE(bob != nullptr);
         CHECK(bob->lock_delay_seconds().value() == 3);
         CHECK(bob->lock_delay_seconds().from().source() ==
               "/home/bob/.config/autostart/light-locker.desktop");
         CHECK(bob->lock_delay_seconds().from().key() == "Exec --lock-after-screensaver");
       }},
      {"xfce_no_locker",
       v1::FAIL,
       {"alice (Xfce): no screen locker autostarts (xfce4-screensaver, light-locker) "
        "(Hidden=true, /home/alice/.config/autostart/xfce4-screensaver.desktop): the screen "
        "never locks"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* bob = FindUser(e, "bob", v1::XFCE);
         REQUIRE(bob != nullptr);
         CHECK(bob->locker() == "xfce4-screensaver");
         CHECK(bob->idle_seconds().value() == 300);  // no channel files: defaults
       }},
      {"sway_default_config",
       v1::FAIL,
       {"alice (sway): swayidle timeout 0 (never) from /home/alice/.config/sway/config:4"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* bob = FindUser(e, "bob", v1::SWAY);
         REQUIRE(bob != nullptr);
         CHECK(bob->locker() == "swaylock");
         CHECK(bob->idle_seconds().value() == 300);
         CHECK(bob->idle_seconds().from().source() == "/etc/sway/config.d/50-idle.conf");
         CHECK(bob->idle_seconds().from().line() == 3);
         CHECK(bob->lock_on_suspend().value());
         CHECK(bob->effective_lock_seconds().value() == 300);
         const auto* alice = FindUser(e, "alice", v1::SWAY);
         REQUIRE(alice != nullptr);
         CHECK(alice->idle_activation_enabled().value());  // swayidle runs, but only blanks
         CHECK_FALSE(alice->lock_enabled().value());
         CHECK(alice->effective_lock_seconds().value() == 0);
       }},
      {"sway_swayidle_config",
       v1::FAIL,
       {"carol (sway): exec swayidle false from /home/carol/.config/swayidle/config "
        "('/home/carol/.config/swayidle/config line 2: unexpected keyword 'wait-before-sleep' "
        "(swayidle exits)')"},
       [](const v1::ScreenLockEvidence& e) {
         const auto* alice = FindUser(e, "alice", v1::SWAY);
         REQUIRE(alice != nullptr);
         CHECK(alice->idle_seconds().value() == 600);
         CHECK(alice->idle_seconds().from().source() == "/home/alice/.config/swayidle/config");
         CHECK(alice->idle_seconds().from().line() == 2);
         const auto* bob = FindUser(e, "bob", v1::SWAY);
         REQUIRE(bob != nullptr);
         CHECK(bob->suspend_idle_seconds().value() == 480);
         CHECK(bob->effective_lock_seconds().from().key() == "suspend");
         CHECK(bob->effective_lock_seconds().from().raw().find("locks via suspend after 480 s") ==
               0);
         const auto* carol = FindUser(e, "carol", v1::SWAY);
         REQUIRE(carol != nullptr);
         CHECK_FALSE(carol->idle_activation_enabled().value());
         CHECK(carol->effective_lock_seconds().value() == 0);
       }},
      {"unsupported_session",
       v1::ERROR,
       {"/usr/share/xsessions/mate.desktop"},
       [](const v1::ScreenLockEvidence& e) {
         CHECK(e.unsupported_sessions_size() == 1);
         CHECK(e.users_size() == 0);
       }},
  };

  for (const Case& c : cases) {
    INFO("case: " << c.name);
    FixtureRoot root(c.name);
    auto view = NewRootedSystemView(root.path().string());
    v1::Evidence ev = CollectScreenLock(*view);
    INFO("evidence: " << ev.ShortDebugString());
    REQUIRE(ev.collection_error().empty());
    REQUIRE(ev.has_screen_lock());
    Verdict v = EvaluateScreenLock(ev.screen_lock(), StrictPolicy());
    INFO("reason: " << v.reason);
    CHECK(v.status == c.status);
    for (const auto& text : c.reason_contains) {
      CHECK_MESSAGE(v.reason.find(text) != std::string::npos, "reason lacks: " << text);
    }
    c.check(ev.screen_lock());
  }
}

TEST_CASE("CollectScreenLock: keyfiles that dconf update has not compiled are warned about") {
  FixtureRoot root("gnome_stale_keyfile");
  auto db_time = fs::last_write_time(root.path() / "etc/dconf/db/local");
  fs::last_write_time(root.path() / "etc/dconf/db/local.d/00-screensaver",
                      db_time + std::chrono::seconds(30));
  auto view = NewRootedSystemView(root.path().string());
  // The mtime comparison needs SystemView::Stat (openat2 rejects O_PATH combined with O_NOCTTY).
  auto st = view->Stat("/etc/dconf/db/local");
  REQUIRE_MESSAGE(st.ok(), "SystemView::Stat is broken: " << st.status().ToString());

  v1::Evidence ev = CollectScreenLock(*view);
  const auto& e = ev.screen_lock();
  INFO("evidence: " << ev.ShortDebugString());
  CHECK(AnyWarningContains(e,
                           "/etc/dconf/db/local.d/00-screensaver is newer than "
                           "/etc/dconf/db/local: its changes are not in effect"));
  CHECK(AnyWarningContains(e, "/etc/dconf/db/extra.d has no compiled database"));
  CHECK(e.warnings_size() == 2);
  Verdict v = EvaluateScreenLock(e, StrictPolicy());
  CHECK(v.status == v1::PASS);  // warnings inform; the compiled database is what takes effect
  CHECK(v.reason.find("2 warning(s)") != std::string::npos);
}

TEST_CASE("CollectScreenLock: shell timeout on machines without a desktop") {
  struct ShellCase {
    std::string name;
    uint32_t max_shell;
    v1::CheckStatus status;
    std::vector<std::string> reason_contains;
  };
  const std::vector<ShellCase> cases = {
      {"no_desktop", 0, v1::NOT_APPLICABLE, {"no graphical session installed"}},
      {"no_desktop", 900, v1::FAIL, {"TMOUT is not set", "limit 900 s"}},
      {"shell_tmout_readonly",
       900,
       v1::PASS,
       {"idle shells end after 600 s (TMOUT at /etc/profile.d/99-tmout.sh:3, readonly at "
        "/etc/profile.d/99-tmout.sh:4)"}},
      {"shell_tmout_readonly",
       300,
       v1::FAIL,
       {"TMOUT=600 at /etc/profile.d/99-tmout.sh:3", "300 s"}},
      {"shell_tmout_readonly", 0, v1::NOT_APPLICABLE, {"no graphical session"}},
      {"shell_tmout_overridable",
       900,
       v1::FAIL,
       {"TMOUT=600 at /etc/profile.d/tmout.sh:2 is not readonly"}},
      {"shell_tmout_unset",
       900,
       v1::FAIL,
       {"TMOUT is unset or 0 at /etc/bash.bashrc:4 ('unset TMOUT')"}},
      {"shell_tmout_later_override",
       900,
       v1::PASS,
       {"after 300 s (TMOUT at /etc/profile.d/tmout.sh:1", "1 warning(s)"}},
  };
  for (const ShellCase& c : cases) {
    INFO("case: " << c.name << " max " << c.max_shell);
    FixtureRoot root(c.name);
    auto view = NewRootedSystemView(root.path().string());
    v1::Evidence ev = CollectScreenLock(*view);
    INFO("evidence: " << ev.ShortDebugString());
    auto policy = StrictPolicy();
    policy.set_max_shell_timeout_seconds(c.max_shell);
    Verdict v = EvaluateScreenLock(ev.screen_lock(), policy);
    INFO("reason: " << v.reason);
    CHECK(v.status == c.status);
    for (const auto& text : c.reason_contains) {
      CHECK_MESSAGE(v.reason.find(text) != std::string::npos, "reason lacks: " << text);
    }
  }
  SUBCASE("the later bash.bashrc assignment is warned about, not applied") {
    FixtureRoot root("shell_tmout_later_override");
    auto view = NewRootedSystemView(root.path().string());
    v1::Evidence ev = CollectScreenLock(*view);
    const auto& e = ev.screen_lock();
    CHECK(e.shell_timeout_seconds().value() == 300);
    CHECK(e.shell_timeout_seconds().from().line() == 1);
    CHECK(e.shell_timeout_seconds().from().locked());
    CHECK(AnyWarningContains(e, "/etc/bash.bashrc:2: 'TMOUT=3600' has no effect"));
  }
}

// A view that reports every /proc/PID as owned by one uid (fixture files belong to whoever
// runs the test).
class ProcOwnerView : public ForwardingSystemView {
 public:
  ProcOwnerView(const SystemView& base, uint32_t uid) : ForwardingSystemView(base), uid_(uid) {}
  Result<FileInfo> Stat(const std::string& path) const override {
    auto info = ForwardingSystemView::Stat(path);
    if (info.ok() && path.rfind("/proc/", 0) == 0) info->uid = uid_;
    return info;
  }

 private:
  uint32_t uid_;
};

TEST_CASE("CollectScreenLock: every installed desktop is judged for every user") {
  FixtureRoot root("multi_desktop");
  auto base = NewRootedSystemView(root.path().string());
  ProcOwnerView view(*base, 1000);
  v1::Evidence ev = CollectScreenLock(view);
  INFO("evidence: " << ev.ShortDebugString());
  const auto& e = ev.screen_lock();
  CHECK(e.unsupported_sessions_size() == 0);
  CHECK(e.users_size() == 8);  // 2 users x GNOME, KDE, Xfce, sway
  for (const char* user : {"alice", "bob"}) {
    for (v1::Desktop d : {v1::GNOME, v1::KDE, v1::XFCE, v1::SWAY}) {
      INFO(user << " " << d);
      const auto* u = FindUser(e, user, d);
      REQUIRE(u != nullptr);
      CHECK(u->errors_size() == 0);
      CHECK(u->desktop_rule().find("the login screen offers every installed session") !=
            std::string::npos);
    }
  }
  REQUIRE(e.user_sessions_size() == 2);
  const auto& alice = e.user_sessions(0);
  CHECK(alice.user() == "alice");
  CHECK(alice.default_session().value() == "xfce");  // Session= beats XSession=
  CHECK(alice.default_session().from().source() == "/var/lib/AccountsService/users/alice");
  CHECK(alice.default_session().from().line() == 4);
  CHECK(alice.judged_size() == 4);
  REQUIRE(alice.running_size() == 1);
  CHECK(alice.running(0) == "KDE");
  CHECK(FindUser(e, "alice", v1::XFCE)
            ->desktop_rule()
            .find("default session ('xfce' from /var/lib/AccountsService/users/alice:4)") !=
        std::string::npos);
  CHECK(FindUser(e, "alice", v1::GNOME)->desktop_rule().find("not the default session") !=
        std::string::npos);
  CHECK(FindUser(e, "alice", v1::KDE)->desktop_rule().find("running now") != std::string::npos);
  const auto& bob = e.user_sessions(1);
  CHECK(bob.default_session().value() == "sway");
  CHECK(bob.default_session().from().source() == "/home/bob/.dmrc");
  CHECK(bob.running_size() == 0);

  Verdict v = EvaluateScreenLock(e, StrictPolicy());
  INFO("reason: " << v.reason);
  CHECK(v.status == v1::PASS);
  CHECK(v.reason.find("2 users on GNOME, KDE, Xfce, sway: screen locks after at most 600 s") !=
        std::string::npos);
}

TEST_CASE("CollectScreenLock: unreadable inputs never pass") {
  FixtureRoot root("gnome_system_locked");
  auto base = NewRootedSystemView(root.path().string());

  SUBCASE("unreadable system database: every GNOME user gets an error") {
    DenyReadView view(*base, kSystemDb);
    v1::Evidence ev = CollectScreenLock(view);
    REQUIRE(ev.collection_error().empty());
    for (const auto& u : ev.screen_lock().users()) CHECK(u.errors_size() == 1);
    Verdict v = EvaluateScreenLock(ev.screen_lock(), StrictPolicy());
    CHECK(v.status == v1::ERROR);
    CHECK(v.reason.find("cannot read dconf database /etc/dconf/db/local") != std::string::npos);
  }
  SUBCASE("unreadable profile") {
    DenyReadView view(*base, "/etc/dconf/profile/user");
    v1::Evidence ev = CollectScreenLock(view);
    CHECK(Evaluate(kScreenLock, ev,
                   [] {
                     v1::Policy p;
                     *p.mutable_screen_lock() = StrictPolicy();
                     return p;
                   }())
              .status == v1::ERROR);
  }
  SUBCASE("unreadable shell startup file on a machine without a desktop") {
    FixtureRoot shell_root("shell_tmout_readonly");
    auto shell_base = NewRootedSystemView(shell_root.path().string());
    DenyReadView view(*shell_base, "/etc/profile.d/99-tmout.sh");
    v1::Evidence ev = CollectScreenLock(view);
    auto policy = StrictPolicy();
    policy.set_max_shell_timeout_seconds(900);
    Verdict v = EvaluateScreenLock(ev.screen_lock(), policy);
    CHECK(v.status == v1::ERROR);
    CHECK(v.reason.find("cannot read /etc/profile.d/99-tmout.sh") != std::string::npos);
  }
  SUBCASE("unreadable inputs of every desktop are errors, never defaults") {
    struct Deny {
      std::string fixture, path, reason;
    };
    const std::vector<Deny> denies = {
        {"xfce_user_override",
         "/home/alice/.config/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml",
         "alice (Xfce): cannot read /home/alice/.config/xfce4"},
        {"xfce_user_override", "/etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml",
         "bob (Xfce): cannot read /etc/xdg/xfce4"},
        {"xfce_user_override", "/etc/xdg/autostart/xfce4-screensaver.desktop",
         "cannot read /etc/xdg/autostart/xfce4-screensaver.desktop"},
        {"sway_default_config", "/etc/sway/config.d/50-idle.conf",
         "bob (sway): cannot read /etc/sway/config.d/50-idle.conf"},
        {"sway_swayidle_config", "/home/alice/.config/swayidle/config",
         "alice (sway): cannot read /home/alice/.config/swayidle/config"},
        {"sway_default_config", "/home/alice/.config/sway/config",
         "alice (sway): cannot read /home/alice/.config/sway/config"},
        {"kde_suspend_path", "/home/alice/.config/powermanagementprofilesrc",
         "alice (KDE): cannot read /home/alice/.config/powermanagementprofilesrc"},
    };
    for (const Deny& d : denies) {
      INFO("deny " << d.path);
      FixtureRoot r(d.fixture);
      auto b = NewRootedSystemView(r.path().string());
      DenyReadView view(*b, d.path);
      v1::Evidence ev = CollectScreenLock(view);
      Verdict v = EvaluateScreenLock(ev.screen_lock(), StrictPolicy());
      INFO("reason: " << v.reason);
      CHECK(v.status == v1::ERROR);
      CHECK(v.reason.find(d.reason) != std::string::npos);
    }
  }
  SUBCASE("a corrupt xfconf file is an error") {
    FixtureRoot r("xfce_user_override");
    std::ofstream(r.path() /
                  "home/alice/.config/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml")
        << "<channel name=\"xfce4-screensaver\"><property name=\"saver\"";
    auto v2 = NewRootedSystemView(r.path().string());
    v1::Evidence ev = CollectScreenLock(*v2);
    Verdict v = EvaluateScreenLock(ev.screen_lock(), StrictPolicy());
    CHECK(v.status == v1::ERROR);
    CHECK(v.reason.find("not a valid xfconf channel file") != std::string::npos);
  }
  SUBCASE("unreadable /etc/passwd: collection error") {
    DenyReadView view(*base, "/etc/passwd");
    v1::Evidence ev = CollectScreenLock(view);
    CHECK(ev.collection_error().find("cannot read local accounts") != std::string::npos);
  }
}

}  // namespace
}  // namespace vigil::collectors

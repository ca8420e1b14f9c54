// CollectScreenLock + EvaluateScreenLock on fixture trees (tests/fixtures/screen_lock/<case>).
// Each case is copied to a temporary root and its dconf keyfile directories are compiled with the
// real `dconf compile`, so the collector reads the same GVDB files dconf itself would.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"

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
  explicit FixtureRoot(const std::string& name) {
    REQUIRE_MESSAGE(fs::exists(kDconf),
                    "dconf is required to compile GVDB fixtures (apt-get install dconf-cli)");
    fs::path src = fs::path(VIGIL_FIXTURES_DIR) / "screen_lock" / name;
    REQUIRE_MESSAGE(fs::is_directory(src), "missing fixture " << src);
    std::string tmpl = (fs::temp_directory_path() / "vigil-screen-lock-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    root_ = tmpl;
    fs::copy(src, root_, fs::copy_options::recursive);
    CompileKeyfileDirs(root_ / "etc/dconf/db");
    if (fs::is_directory(root_ / "home")) {
      for (const auto& home : fs::directory_iterator(root_ / "home")) {
        CompileKeyfileDirs(home.path() / ".config/dconf");
      }
    }
  }
  ~FixtureRoot() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const fs::path& path() const { return root_; }

 private:
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
      {"unsupported_session",
       v1::ERROR,
       {"/usr/share/xsessions/xfce.desktop"},
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

// A view whose reads of one path fail with a permission error.
class DenyingView : public ForwardingSystemView {
 public:
  DenyingView(const SystemView& base, std::string denied)
      : ForwardingSystemView(base), denied_(std::move(denied)) {}
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) const override {
    if (path == denied_) return Status::PermissionDenied(path + ": permission denied");
    return ForwardingSystemView::ReadFile(path, max_bytes);
  }

 private:
  std::string denied_;
};

TEST_CASE("CollectScreenLock: unreadable inputs never pass") {
  FixtureRoot root("gnome_system_locked");
  auto base = NewRootedSystemView(root.path().string());

  SUBCASE("unreadable system database: every GNOME user gets an error") {
    DenyingView view(*base, kSystemDb);
    v1::Evidence ev = CollectScreenLock(view);
    REQUIRE(ev.collection_error().empty());
    for (const auto& u : ev.screen_lock().users()) CHECK(u.errors_size() == 1);
    Verdict v = EvaluateScreenLock(ev.screen_lock(), StrictPolicy());
    CHECK(v.status == v1::ERROR);
    CHECK(v.reason.find("cannot read dconf database /etc/dconf/db/local") != std::string::npos);
  }
  SUBCASE("unreadable profile") {
    DenyingView view(*base, "/etc/dconf/profile/user");
    v1::Evidence ev = CollectScreenLock(view);
    CHECK(Evaluate(kScreenLock, ev,
                   [] {
                     v1::Policy p;
                     *p.mutable_screen_lock() = StrictPolicy();
                     return p;
                   }())
              .status == v1::ERROR);
  }
  SUBCASE("unreadable /etc/passwd: collection error") {
    DenyingView view(*base, "/etc/passwd");
    v1::Evidence ev = CollectScreenLock(view);
    CHECK(ev.collection_error().find("cannot read local accounts") != std::string::npos);
  }
}

}  // namespace
}  // namespace vigil::collectors

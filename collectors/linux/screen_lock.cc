// screen_lock on Linux: for every human user and every installed desktop (GNOME, KDE), the
// idle/lock settings that desktop would actually apply, with where each value came from and
// whether the user can change it. GNOME values are resolved through dconf's compiled databases
// exactly as dconf does (dconf.h); KDE values through the KConfig cascade (kconfig.h).
#include <glib.h>

#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "collectors/collectors.h"
#include "collectors/linux/accounts.h"
#include "collectors/linux/dconf.h"
#include "collectors/linux/desktop_sessions.h"
#include "collectors/linux/gvdb.h"
#include "collectors/linux/kconfig.h"
#include "collectors/linux/shell_timeout.h"
#include "collectors/linux/sway.h"
#include "collectors/linux/xfconf.h"
#include "collectors/text.h"

namespace vigil::collectors {
namespace {

using linux_os::DconfReader;
using linux_os::KConfigLayer;
using linux_os::PasswdEntry;
using linux_os::VariantValue;

constexpr const char* kSessionDirs[] = {"/usr/share/xsessions", "/usr/share/wayland-sessions"};
constexpr size_t kMaxConfigBytes = 1u << 20;

// Keeps warnings unique and in first-seen order.
class Warnings {
 public:
  explicit Warnings(v1::ScreenLockEvidence* e) : e_(e) {}
  void Add(const std::string& w) {
    if (seen_.insert(w).second) e_->add_warnings(w);
  }

 private:
  v1::ScreenLockEvidence* e_;
  std::set<std::string> seen_;
};

// ---- sessions --------------------------------------------------------------------------------

struct Sessions {
  std::vector<std::string> files;
  std::vector<std::string> unsupported;
  bool gnome = false;
  bool kde = false;
  bool xfce = false;
  bool sway = false;
  std::map<v1::Desktop, std::vector<std::string>> files_of;
  std::map<std::string, v1::Desktop> by_name;  // session name (basename without .desktop)
};

std::string ExecLine(std::string_view text) {
  for (std::string_view line : SplitLines(text)) {
    if (StartsWith(line, "Exec=")) return std::string(line.substr(5));
  }
  return "";
}

Result<Sessions> ScanSessions(const SystemView& view) {
  Sessions s;
  for (const char* dir : kSessionDirs) {
    auto entries = view.ListDir(dir);
    if (!entries.ok()) {
      if (entries.status().code() == Status::Code::kNotFound) continue;
      return Status::IoError(std::string("cannot list ") + dir + ": " + entries.status().message());
    }
    for (const DirEntry& e : *entries) {
      if (e.type == FileType::kDirectory || !EndsWith(e.name, ".desktop")) continue;
      std::string path = std::string(dir) + "/" + e.name;
      s.files.push_back(path);
      std::string lower = e.name;
      for (char& c : lower) c = static_cast<char>(g_ascii_tolower(c));
      // The Exec line catches renamed sessions (e.g. a vendor's "corp.desktop" running GNOME).
      std::string exec;
      if (auto text = view.ReadFile(path, kMaxConfigBytes); text.ok()) exec = ExecLine(*text);
      v1::Desktop d = v1::DESKTOP_UNSPECIFIED;
      if (StartsWith(lower, "gnome") || StartsWith(lower, "ubuntu") ||
          exec.find("gnome-session") != std::string::npos) {
        s.gnome = true;
        d = v1::GNOME;
      } else if (StartsWith(lower, "plasma") || exec.find("startplasma") != std::string::npos ||
                 exec.find("startkde") != std::string::npos) {
        s.kde = true;
        d = v1::KDE;
      } else if (StartsWith(lower, "xfce") || exec.find("startxfce4") != std::string::npos ||
                 exec.find("xfce4-session") != std::string::npos) {
        s.xfce = true;
        d = v1::XFCE;
      } else if (StartsWith(lower, "sway") || exec == "sway" || StartsWith(exec, "sway ") ||
                 exec.find("/sway") != std::string::npos) {
        s.sway = true;
        d = v1::SWAY;
      } else {
        s.unsupported.push_back(path);
      }
      if (d != v1::DESKTOP_UNSPECIFIED) {
        s.files_of[d].push_back(path);
        s.by_name[e.name.substr(0, e.name.size() - std::string_view(".desktop").size())] = d;
      }
    }
  }
  return s;
}

// ---- effective lock time --------------------------------------------------------------------

std::string Where(const v1::Provenance& p) {
  std::string s = p.source();
  if (p.line() > 0) s += ":" + std::to_string(p.line());
  return s;
}

// The shortest path from idle to a locked screen, from the facts already in `u`: the screensaver
// path (idle activation on, locking on, idle time > 0; the grace delay follows) or the suspend
// path (suspend on idle, locking on suspend; no grace). Display blanking alone is never a lock.
void DeriveEffectiveLock(v1::UserScreenLock* u) {
  const bool disabled = u->lock_screen_disabled().value();
  const bool saver = !disabled && u->idle_activation_enabled().value() &&
                     u->lock_enabled().value() && u->idle_seconds().value() > 0;
  const bool suspend = !disabled && u->has_suspend_idle_seconds() &&
                       u->suspend_idle_seconds().value() > 0 && u->has_lock_on_suspend() &&
                       u->lock_on_suspend().value();
  v1::IntFact* eff = u->mutable_effective_lock_seconds();
  v1::IntFact* grace = u->mutable_effective_grace_seconds();
  v1::Provenance* from = eff->mutable_from();
  from->set_user_can_override(false);
  if (saver && (!suspend || u->idle_seconds().value() <= u->suspend_idle_seconds().value())) {
    const auto& idle = u->idle_seconds();
    eff->set_value(idle.value());
    from->set_key("screensaver");
    from->set_source(idle.from().source());
    from->set_line(idle.from().line());
    from->set_raw("screen locks " + std::to_string(idle.value()) + " s after idle (" +
                  idle.from().key() + " from " + Where(idle.from()) + "), password after " +
                  std::to_string(u->lock_delay_seconds().value()) + " s grace");
    from->set_locked(idle.from().locked());
    from->set_user_can_override(idle.from().user_can_override());
    *grace = u->lock_delay_seconds();
  } else if (suspend) {
    const auto& s = u->suspend_idle_seconds();
    eff->set_value(s.value());
    from->set_key("suspend");
    from->set_source(s.from().source());
    from->set_line(s.from().line());
    from->set_raw("locks via suspend after " + std::to_string(s.value()) + " s (" + s.from().raw() +
                  " from " + Where(s.from()) + "; lock on suspend from " +
                  Where(u->lock_on_suspend().from()) + ")");
    from->set_locked(s.from().locked() && u->lock_on_suspend().from().locked());
    from->set_user_can_override(s.from().user_can_override() ||
                                u->lock_on_suspend().from().user_can_override());
    grace->set_value(0);
    grace->mutable_from()->set_source("suspend");
    grace->mutable_from()->set_raw("locking on suspend has no grace period");
  } else {
    eff->set_value(0);
    from->set_key("none");
    std::vector<std::string> why;
    if (disabled) why.push_back("locking is disabled");
    if (!u->idle_activation_enabled().value()) why.push_back("idle activation is off");
    if (!u->lock_enabled().value()) why.push_back("locking is off");
    if (u->idle_seconds().value() <= 0) why.push_back("idle time is 0 (never)");
    if (!u->has_suspend_idle_seconds() || u->suspend_idle_seconds().value() <= 0) {
      why.push_back("no suspend on idle");
    } else if (!u->lock_on_suspend().value()) {
      why.push_back("suspend does not lock");
    }
    from->set_raw("never locks on idle: " + Join(why, ", "));
    *grace = u->lock_delay_seconds();
  }
}

// ---- GNOME -----------------------------------------------------------------------------------

struct GnomeKey {
  const char* dconf_path;
  const char* schema;
  const char* name;
  const char* type;           // GVariant type of the schema key
  const char* upstream_text;  // gsettings-desktop-schemas default
};

constexpr GnomeKey kIdleDelay{"/org/gnome/desktop/session/idle-delay", "org.gnome.desktop.session",
                              "idle-delay", "u", "uint32 300"};
constexpr GnomeKey kLockEnabled{"/org/gnome/desktop/screensaver/lock-enabled",
                                "org.gnome.desktop.screensaver", "lock-enabled", "b", "true"};
constexpr GnomeKey kLockDelay{"/org/gnome/desktop/screensaver/lock-delay",
                              "org.gnome.desktop.screensaver", "lock-delay", "u", "uint32 0"};
constexpr GnomeKey kIdleActivation{"/org/gnome/desktop/screensaver/idle-activation-enabled",
                                   "org.gnome.desktop.screensaver", "idle-activation-enabled", "b",
                                   "true"};
constexpr GnomeKey kDisableLock{"/org/gnome/desktop/lockdown/disable-lock-screen",
                                "org.gnome.desktop.lockdown", "disable-lock-screen", "b", "false"};
// gnome-settings-daemon's power plugin: what happens after this much idle time on AC power.
constexpr GnomeKey kSleepTimeout{
    "/org/gnome/settings-daemon/plugins/power/sleep-inactive-ac-timeout",
    "org.gnome.settings-daemon.plugins.power", "sleep-inactive-ac-timeout", "i", "1200"};
constexpr GnomeKey kSleepType{"/org/gnome/settings-daemon/plugins/power/sleep-inactive-ac-type",
                              "org.gnome.settings-daemon.plugins.power", "sleep-inactive-ac-type",
                              "s", "'suspend'"};
// Ubuntu's patched gnome-shell locks on suspend only while this is true (default true); other
// distributions do not have the key, so the default applies.
constexpr GnomeKey kLockOnSuspend{"/org/gnome/desktop/screensaver/ubuntu-lock-on-suspend",
                                  "org.gnome.desktop.screensaver", "ubuntu-lock-on-suspend", "b",
                                  "true"};
constexpr const GnomeKey* kGnomeKeys[] = {&kIdleDelay,      &kLockEnabled,  &kLockDelay,
                                          &kIdleActivation, &kDisableLock,  &kSleepTimeout,
                                          &kSleepType,      &kLockOnSuspend};

struct SchemaDefault {
  VariantValue value;
  std::string source;
};

// Schema defaults after vendor overrides (/usr/share/glib-2.0/schemas/*.gschema.override), as
// glib-compile-schemas applies them: files in name order, later files win, and a "[schema:GNOME]"
// group (desktop-specific; every GNOME session lists GNOME in XDG_CURRENT_DESKTOP) beats the
// plain group.
std::map<std::string, SchemaDefault> ReadSchemaDefaults(const SystemView& view,
                                                        Warnings& warnings) {
  std::map<std::string, SchemaDefault> plain, gnome;
  constexpr const char* kDir = "/usr/share/glib-2.0/schemas";
  auto entries = view.ListDir(kDir);
  if (!entries.ok()) {
    if (entries.status().code() != Status::Code::kNotFound) {
      warnings.Add(std::string("cannot list ") + kDir + ": " + entries.status().message() +
                   " (vendor schema overrides not considered)");
    }
  } else {
    for (const DirEntry& e : *entries) {
      if (!EndsWith(e.name, ".gschema.override") || e.type == FileType::kDirectory) continue;
      std::string path = std::string(kDir) + "/" + e.name;
      auto text = view.ReadFile(path, kMaxConfigBytes);
      if (!text.ok()) {
        warnings.Add("cannot read " + path + ": " + text.status().message());
        continue;
      }
      GKeyFile* kf = g_key_file_new();
      GError* error = nullptr;
      if (!g_key_file_load_from_data(kf, text->data(), text->size(), G_KEY_FILE_NONE, &error)) {
        warnings.Add(path + ": not a valid key file (" + error->message + "), ignored");
        g_error_free(error);
        g_key_file_free(kf);
        continue;
      }
      for (const GnomeKey* key : kGnomeKeys) {
        const std::string plain_group = key->schema;
        const std::string desktop_group = plain_group + ":GNOME";
        for (const std::string& group : {plain_group, desktop_group}) {
          gchar* raw = g_key_file_get_value(kf, group.c_str(), key->name, nullptr);
          if (raw == nullptr) continue;
          auto parsed = linux_os::ParseVariantText(raw, key->type);
          if (!parsed.ok()) {
            warnings.Add(path + ": [" + group + "] " + key->name + "=" + raw + " is not a valid " +
                         key->type + " value, ignored");
          } else {
            auto& target = group == plain_group ? plain : gnome;
            target[key->dconf_path] = {std::move(parsed).value(), path};
          }
          g_free(raw);
        }
      }
      g_key_file_free(kf);
    }
  }
  for (auto& [k, v] : gnome) plain[k] = std::move(v);
  return plain;
}

SchemaDefault DefaultFor(const GnomeKey& key,
                         const std::map<std::string, SchemaDefault>& overrides) {
  if (auto it = overrides.find(key.dconf_path); it != overrides.end()) return it->second;
  auto parsed = linux_os::ParseVariantText(key.upstream_text, key.type);
  // The upstream texts are constants above, so this cannot fail.
  return {parsed.ok() ? *parsed : VariantValue{}, "default:gsettings-desktop-schemas"};
}

struct Resolved {
  VariantValue value;
  v1::Provenance from;
};

void AddError(v1::UserScreenLock* u, const std::string& msg) {
  for (const auto& e : u->errors()) {
    if (e == msg) return;
  }
  u->add_errors(msg);
}

std::optional<Resolved> ResolveGnomeKey(DconfReader& reader, const linux_os::DconfProfile& profile,
                                        const GnomeKey& key,
                                        const std::map<std::string, SchemaDefault>& defaults,
                                        v1::UserScreenLock* u, Warnings& warnings) {
  auto read = reader.Read(profile, key.dconf_path);
  if (!read.ok()) {
    AddError(u, read.status().message());
    return std::nullopt;
  }
  Resolved r;
  r.from.set_key(key.dconf_path);
  r.from.set_locked(read->locked);
  r.from.set_user_can_override(read->writable);
  if (read->value && read->value->type == key.type) {
    r.value = *read->value;
    r.from.set_source(read->source);
  } else {
    if (read->value) {
      // g_settings_read_from_backend drops values of the wrong type and uses the default.
      warnings.Add(read->source + " sets " + key.dconf_path + " to " + read->value->text +
                   ", not of schema type '" + key.type + "': GSettings ignores it");
    }
    SchemaDefault d = DefaultFor(key, defaults);
    r.value = d.value;
    r.from.set_source(d.source);
  }
  r.from.set_raw(r.value.text);
  return r;
}

void CollectGnomeUser(const SystemView& view, DconfReader& reader, const PasswdEntry& user,
                      const std::map<std::string, SchemaDefault>& defaults, Warnings& warnings,
                      v1::UserScreenLock* u) {
  auto profile = linux_os::ReadDconfProfile(view, user.uid, user.home);
  if (!profile.ok()) {
    AddError(u, "cannot read dconf profile: " + profile.status().message());
    return;
  }
  for (const auto& w : profile->warnings) {
    warnings.Add((profile->path.empty() ? "dconf profile" : profile->path) + ": " + w);
  }
  auto set_int = [&](const GnomeKey& key, v1::IntFact* f) {
    if (auto r = ResolveGnomeKey(reader, *profile, key, defaults, u, warnings)) {
      f->set_value(r->value.integer.value_or(0));
      *f->mutable_from() = r->from;
    }
  };
  auto set_bool = [&](const GnomeKey& key, v1::BoolFact* f) {
    if (auto r = ResolveGnomeKey(reader, *profile, key, defaults, u, warnings)) {
      f->set_value(r->value.boolean.value_or(false));
      *f->mutable_from() = r->from;
    }
  };
  set_int(kIdleDelay, u->mutable_idle_seconds());
  set_bool(kLockEnabled, u->mutable_lock_enabled());
  set_int(kLockDelay, u->mutable_lock_delay_seconds());
  set_bool(kIdleActivation, u->mutable_idle_activation_enabled());
  set_bool(kDisableLock, u->mutable_lock_screen_disabled());
  u->set_locker("gnome-shell");

  // Suspend on idle (gsd-power). The upstream default ('suspend' after 1200 s) is not credited:
  // gnome-settings-daemon ignores it in virtual machines and distributions patch it, so only an
  // explicitly configured suspend counts as a path to a locked screen.
  auto timeout = ResolveGnomeKey(reader, *profile, kSleepTimeout, defaults, u, warnings);
  auto type = ResolveGnomeKey(reader, *profile, kSleepType, defaults, u, warnings);
  auto on_suspend = ResolveGnomeKey(reader, *profile, kLockOnSuspend, defaults, u, warnings);
  if (!timeout || !type || !on_suspend) return;
  const std::string action = type->value.string.value_or("");
  const bool explicit_type = !StartsWith(type->from.source(), "default:");
  const bool sleeps = action == "suspend" || action == "hibernate";
  v1::IntFact* s = u->mutable_suspend_idle_seconds();
  *s->mutable_from() = timeout->from;
  s->mutable_from()->set_raw("sleep-inactive-ac-type " + type->value.text + " from " +
                             type->from.source() + ", sleep-inactive-ac-timeout " +
                             timeout->value.text);
  s->mutable_from()->set_locked(timeout->from.locked() && type->from.locked());
  s->mutable_from()->set_user_can_override(timeout->from.user_can_override() ||
                                           type->from.user_can_override());
  const int64_t seconds = timeout->value.integer.value_or(0);
  s->set_value(sleeps && explicit_type && seconds > 0 ? seconds : 0);
  if (sleeps && !explicit_type) {
    s->mutable_from()->set_raw(s->from().raw() + " (upstream default, not credited)");
  }
  // gnome-shell locks on suspend when locking is enabled (and, on Ubuntu, lock-on-suspend).
  v1::BoolFact* l = u->mutable_lock_on_suspend();
  const bool lock_enabled = u->lock_enabled().value();
  l->set_value(lock_enabled && on_suspend->value.boolean.value_or(true));
  *l->mutable_from() = lock_enabled ? on_suspend->from : u->lock_enabled().from();
  DeriveEffectiveLock(u);
}

// dconf update compiles /etc/dconf/db/NAME.d/ into /etc/dconf/db/NAME; edits that were never
// compiled are not in effect, which an administrator reading the keyfiles would not expect.
void CheckUncompiledKeyfiles(const SystemView& view, Warnings& warnings) {
  constexpr const char* kDbDir = "/etc/dconf/db";
  auto entries = view.ListDir(kDbDir);
  if (!entries.ok()) {
    if (entries.status().code() != Status::Code::kNotFound) {
      warnings.Add(std::string("cannot list ") + kDbDir + ": " + entries.status().message());
    }
    return;
  }
  std::set<std::string> names;
  for (const DirEntry& e : *entries) names.insert(e.name);
  for (const DirEntry& e : *entries) {
    if (e.type != FileType::kDirectory || !EndsWith(e.name, ".d") || e.name.size() < 3) continue;
    const std::string dir = std::string(kDbDir) + "/" + e.name;
    const std::string db_name = e.name.substr(0, e.name.size() - 2);
    const std::string db = std::string(kDbDir) + "/" + db_name;
    if (names.count(db_name) == 0) {
      warnings.Add(dir + " has no compiled database " + db +
                   ": its settings are not in effect until `dconf update`");
      continue;
    }
    auto db_info = view.Stat(db);
    if (!db_info.ok()) {
      warnings.Add("cannot tell whether " + dir + " was compiled: " + db_info.status().message());
      continue;
    }
    std::vector<std::string> files;
    for (const std::string& sub : {dir, dir + "/locks"}) {
      auto list = view.ListDir(sub);
      if (!list.ok()) continue;
      for (const DirEntry& f : *list) {
        if (f.type != FileType::kDirectory) files.push_back(sub + "/" + f.name);
      }
    }
    for (const std::string& f : files) {
      auto info = view.Stat(f);
      if (!info.ok()) {
        warnings.Add("cannot tell whether " + f + " was compiled: " + info.status().message());
      } else if (info->mtime_ns > db_info->mtime_ns) {
        warnings.Add(f + " is newer than " + db +
                     ": its changes are not in effect until `dconf update`");
      }
    }
  }
}

// ---- KDE -----------------------------------------------------------------------------------

std::optional<bool> ParseKdeBool(std::string_view v) {
  std::string s(v);
  for (char& c : s) c = static_cast<char>(g_ascii_tolower(c));
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return std::nullopt;
}

std::optional<double> ParseNumber(std::string_view v) {
  double d = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty() || !std::isfinite(d)) {
    return std::nullopt;
  }
  return d;
}

// Reads KConfig files lowest priority first; a missing file is simply not a layer.
std::vector<KConfigLayer> ReadKConfigLayers(const SystemView& view,
                                            const std::vector<std::string>& paths,
                                            Warnings& warnings, v1::UserScreenLock* u) {
  std::vector<KConfigLayer> layers;
  for (const std::string& path : paths) {
    auto text = view.ReadFile(path, kMaxConfigBytes);
    if (!text.ok()) {
      if (text.status().code() != Status::Code::kNotFound) {
        AddError(u, "cannot read " + path + ": " + text.status().message());
      }
      continue;
    }
    KConfigLayer layer{path, linux_os::ParseKConfig(*text)};
    for (const auto& w : layer.file.warnings) warnings.Add(path + ": " + w);
    layers.push_back(std::move(layer));
  }
  return layers;
}

void CollectKdeUser(const SystemView& view, const PasswdEntry& user, Warnings& warnings,
                    v1::UserScreenLock* u) {
  // XDG_CONFIG_DIRS order as a Plasma session sets it: /etc/xdg, then the look-and-feel
  // defaults in ~/.config/kdedefaults, then the user's own ~/.config.
  const std::string cfg = user.home + "/.config";
  auto locker = ReadKConfigLayers(
      view,
      {"/etc/xdg/kscreenlockerrc", cfg + "/kdedefaults/kscreenlockerrc", cfg + "/kscreenlockerrc"},
      warnings, u);
  auto globals = ReadKConfigLayers(
      view, {"/etc/xdg/kdeglobals", cfg + "/kdedefaults/kdeglobals", cfg + "/kdeglobals"}, warnings,
      u);

  struct Raw {
    std::optional<std::string> value;
    v1::Provenance from;
  };
  auto lookup = [&](const std::vector<KConfigLayer>& layers, const std::string& group,
                    const std::string& key, const std::string& default_raw,
                    const std::string& default_source) {
    auto l = linux_os::LookupKConfig(layers, group, key);
    Raw r;
    r.from.set_key("[" + group + "] " + key);
    r.from.set_locked(l.locked);
    r.from.set_user_can_override(!l.locked);
    if (l.found) {
      r.value = l.value.value;
      r.from.set_source(l.value.source);
      r.from.set_raw(l.value.raw);
      r.from.set_line(static_cast<uint32_t>(l.value.line));
    } else {
      r.from.set_source(default_source);
      r.from.set_raw(default_raw);
    }
    return r;
  };
  auto set_bool = [&](const std::string& key, bool def, v1::BoolFact* f) {
    Raw r = lookup(locker, "Daemon", key, def ? "true" : "false", "default:kscreenlocker");
    bool v = def;
    if (r.value) {
      if (auto b = ParseKdeBool(*r.value)) {
        v = *b;
      } else {
        warnings.Add(r.from.source() + ": [Daemon] " + key + "=" + *r.value +
                     " is not a boolean; KConfig uses the default");
        r.from.set_source("default:kscreenlocker");
      }
    }
    f->set_value(v);
    *f->mutable_from() = r.from;
  };
  // Timeout is minutes, LockGrace seconds.
  auto set_seconds = [&](const std::string& key, int64_t def, double scale, v1::IntFact* f) {
    Raw r = lookup(locker, "Daemon", key, std::to_string(def), "default:kscreenlocker");
    int64_t seconds = def * static_cast<int64_t>(scale);
    if (r.value) {
      auto n = ParseNumber(*r.value);
      if (n && *n >= 0 && *n * scale < 1e12) {
        seconds = std::llround(*n * scale);
        if (*n != std::floor(*n)) {
          warnings.Add(r.from.source() + ": [Daemon] " + key + "=" + *r.value +
                       " is not a whole number; kscreenlocker reads an integer setting and may "
                       "use its default instead");
        }
      } else {
        warnings.Add(r.from.source() + ": [Daemon] " + key + "=" + *r.value +
                     " is not a valid number; the default applies");
        r.from.set_source("default:kscreenlocker");
      }
    }
    f->set_value(seconds);
    *f->mutable_from() = r.from;
  };
  set_seconds("Timeout", 5, 60, u->mutable_idle_seconds());
  set_bool("Lock", true, u->mutable_lock_enabled());
  set_seconds("LockGrace", 5, 1, u->mutable_lock_delay_seconds());
  set_bool("Autolock", true, u->mutable_idle_activation_enabled());

  // Kiosk restriction: "action/lock_screen=false" removes the ability to lock at all.
  Raw r = lookup(globals, "KDE Action Restrictions", "action/lock_screen", "true",
                 "default:kdeglobals");
  bool allowed = true;
  if (r.value) allowed = ParseKdeBool(*r.value).value_or(true);
  u->mutable_lock_screen_disabled()->set_value(!allowed);
  *u->mutable_lock_screen_disabled()->mutable_from() = r.from;
  u->set_locker("kscreenlocker");

  // PowerDevil (Plasma 5) suspends after [AC][SuspendSession] idleTime ms; without that group it
  // does not suspend on idle on AC. kscreenlocker locks on resume unless LockOnResume=false.
  set_bool("LockOnResume", true, u->mutable_lock_on_suspend());
  auto power = ReadKConfigLayers(
      view,
      {"/etc/xdg/powermanagementprofilesrc", cfg + "/kdedefaults/powermanagementprofilesrc",
       cfg + "/powermanagementprofilesrc"},
      warnings, u);
  Raw idle = lookup(power, "AC/SuspendSession", "idleTime", "", "default:powerdevil");
  Raw type = lookup(power, "AC/SuspendSession", "suspendType", "", "default:powerdevil");
  v1::IntFact* s = u->mutable_suspend_idle_seconds();
  *s->mutable_from() = idle.from;
  int64_t seconds = 0;
  // PowerDevil's SuspendSession modes: 1 suspend to RAM, 2 to disk, 4 hybrid, 32 lock screen.
  // Without an explicit suspendType the action is not credited (what PowerDevil then does
  // differs between Plasma releases).
  double mode = -1;
  if (type.value) mode = ParseNumber(*type.value).value_or(-1);
  const bool sleeps = mode == 1 || mode == 2 || mode == 4 || mode == 32;
  if (idle.value) {
    auto ms = ParseNumber(*idle.value);
    if (ms && *ms > 0 && *ms < 1e12 && sleeps) seconds = std::llround(*ms / 1000);
    if (!sleeps) {
      s->mutable_from()->set_raw(idle.from.raw() + " with " +
                                 (type.value ? "suspendType " + *type.value + " (not a suspend)"
                                             : std::string("no suspendType (not credited)")));
    }
  } else {
    s->mutable_from()->set_raw("no [AC][SuspendSession] idleTime: no suspend on idle");
  }
  s->set_value(seconds);
  if (mode == 32) {  // the action is locking itself
    u->mutable_lock_on_suspend()->set_value(true);
    *u->mutable_lock_on_suspend()->mutable_from() = type.from;
  }
  DeriveEffectiveLock(u);
}

// ---- shell timeout -------------------------------------------------------------------------

// TMOUT from the system-wide bash startup files, in the order a Debian login shell reads them:
// /etc/profile (which runs /etc/profile.d/*.sh in name order), then /etc/bash.bashrc.
void CollectShellTimeout(const SystemView& view, Warnings& warnings, v1::ScreenLockEvidence* sl) {
  std::vector<std::string> files = {"/etc/profile"};
  constexpr const char* kProfileD = "/etc/profile.d";
  if (auto entries = view.ListDir(kProfileD); entries.ok()) {
    for (const DirEntry& e : *entries) {
      if (e.type != FileType::kDirectory && EndsWith(e.name, ".sh")) {
        files.push_back(std::string(kProfileD) + "/" + e.name);
      }
    }
  } else if (entries.status().code() != Status::Code::kNotFound) {
    sl->add_shell_timeout_errors(std::string("cannot list ") + kProfileD + ": " +
                                 entries.status().message());
  }
  files.push_back("/etc/bash.bashrc");

  linux_os::ShellTimeoutState state;
  for (const std::string& path : files) {
    auto text = view.ReadFile(path, kMaxConfigBytes);
    if (!text.ok()) {
      if (text.status().code() != Status::Code::kNotFound) {
        sl->add_shell_timeout_errors("cannot read " + path + ": " + text.status().message());
      }
      continue;
    }
    linux_os::ApplyShellTimeout(path, linux_os::ParseShellTimeout(*text), &state);
  }
  for (const auto& w : state.warnings) warnings.Add(w);

  v1::IntFact* t = sl->mutable_shell_timeout_seconds();
  t->set_value(state.set ? state.seconds : 0);
  v1::Provenance* from = t->mutable_from();
  from->set_key("TMOUT");
  from->set_source(state.source.empty() ? "default:bash" : state.source);
  from->set_line(static_cast<uint32_t>(state.line));
  from->set_raw(state.raw);
  from->set_locked(state.readonly);
  from->set_user_can_override(!state.readonly);

  v1::BoolFact* ro = sl->mutable_shell_timeout_readonly();
  ro->set_value(state.readonly);
  v1::Provenance* ro_from = ro->mutable_from();
  ro_from->set_key("readonly TMOUT");
  ro_from->set_source(state.readonly ? state.readonly_source : "default:bash");
  ro_from->set_line(static_cast<uint32_t>(state.readonly_line));
  ro_from->set_raw(state.readonly_raw);
  ro_from->set_locked(state.readonly);
  ro_from->set_user_can_override(!state.readonly);
}

// ---- groups ----------------------------------------------------------------------------------

// Group names per user (primary group and supplementary memberships from /etc/group), for
// xfconf Kiosk lists naming "@group".
std::map<std::string, std::vector<std::string>> ReadGroups(const SystemView& view,
                                                           const std::vector<PasswdEntry>& users,
                                                           Warnings& warnings) {
  std::map<std::string, std::vector<std::string>> out;
  auto text = view.ReadFile("/etc/group", kMaxConfigBytes);
  if (!text.ok()) {
    if (text.status().code() != Status::Code::kNotFound) {
      warnings.Add("cannot read /etc/group: " + text.status().message() +
                   " (xfconf locks naming @groups are not applied)");
    }
    return out;
  }
  for (std::string_view line : SplitLines(*text)) {
    // name:x:gid:member,member
    std::vector<std::string_view> f;
    size_t pos = 0;
    for (int i = 0; i < 3; ++i) {
      size_t c = line.find(':', pos);
      if (c == std::string_view::npos) break;
      f.push_back(line.substr(pos, c - pos));
      pos = c + 1;
    }
    if (f.size() != 3) continue;
    const std::string name(f[0]);
    const std::string_view members = line.substr(pos);
    uint32_t gid = 0;
    auto [ptr, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), gid);
    const bool gid_ok = ec == std::errc() && ptr == f[2].data() + f[2].size();
    for (const PasswdEntry& u : users) {
      bool member = gid_ok && gid == u.gid;
      size_t p = 0;
      while (!member && p <= members.size()) {
        size_t comma = members.find(',', p);
        if (comma == std::string_view::npos) comma = members.size();
        member = members.substr(p, comma - p) == u.name;
        p = comma + 1;
      }
      if (member) out[u.name].push_back(name);
    }
  }
  return out;
}

// ---- XDG autostart ---------------------------------------------------------------------------

struct Autostart {
  bool enabled = false;
  std::string source;  // the .desktop file that decided, "" when none exists
  std::string why;     // for messages: "Hidden=true", ...
  std::string error;
};

// Whether NAME.desktop autostarts in an Xfce session for this user: the user's
// ~/.config/autostart entry hides the system one in /etc/xdg/autostart (XDG Autostart spec);
// Hidden=true, X-GNOME-Autostart-enabled=false, OnlyShowIn without XFCE or NotShowIn with XFCE
// disable it.
Autostart ReadAutostart(const SystemView& view, const PasswdEntry& user, const std::string& name) {
  Autostart a;
  for (const std::string& path : {user.home + "/.config/autostart/" + name + ".desktop",
                                  "/etc/xdg/autostart/" + name + ".desktop"}) {
    auto text = view.ReadFile(path, kMaxConfigBytes);
    if (!text.ok()) {
      if (text.status().code() == Status::Code::kNotFound) continue;
      a.error = "cannot read " + path + ": " + text.status().message();
      return a;
    }
    a.source = path;
    a.enabled = true;
    auto get = [&](const char* key) {
      auto v = linux_os::FindIniValue(*text, "Desktop Entry", key);
      return v ? v->value : std::string();
    };
    auto lists_xfce = [](const std::string& list) {
      return (";" + list + ";").find(";XFCE;") != std::string::npos;
    };
    if (get("Hidden") == "true") {
      a.enabled = false;
      a.why = "Hidden=true";
    } else if (get("X-GNOME-Autostart-enabled") == "false") {
      a.enabled = false;
      a.why = "X-GNOME-Autostart-enabled=false";
    } else if (!get("OnlyShowIn").empty() && !lists_xfce(get("OnlyShowIn"))) {
      a.enabled = false;
      a.why = "OnlyShowIn=" + get("OnlyShowIn");
    } else if (lists_xfce(get("NotShowIn"))) {
      a.enabled = false;
      a.why = "NotShowIn=" + get("NotShowIn");
    }
    return a;
  }
  return a;
}

// ---- Xfce ------------------------------------------------------------------------------------

constexpr const char* kXfconfDir = "xfce4/xfconf/xfce-perchannel-xml";

// One xfconf channel's files, system (/etc/xdg) first, then the user's; unreadable or malformed
// files are errors on `u` (xfconfd would drop a malformed file, so what applies is unknowable).
std::vector<linux_os::XfconfLayer> ReadXfconfLayers(const SystemView& view, const PasswdEntry& user,
                                                    const std::string& channel,
                                                    v1::UserScreenLock* u) {
  std::vector<linux_os::XfconfLayer> layers;
  const std::string file = std::string(kXfconfDir) + "/" + channel + ".xml";
  for (const auto& [path, system] : std::vector<std::pair<std::string, bool>>{
           {"/etc/xdg/" + file, true}, {user.home + "/.config/" + file, false}}) {
    auto text = view.ReadFile(path, kMaxConfigBytes);
    if (!text.ok()) {
      if (text.status().code() != Status::Code::kNotFound) {
        AddError(u, "cannot read " + path + ": " + text.status().message());
      }
      continue;
    }
    auto parsed = linux_os::ParseXfconfChannel(*text);
    if (!parsed.ok()) {
      AddError(u, path + ": " + parsed.status().message());
      continue;
    }
    layers.push_back({path, system, std::move(parsed).value()});
  }
  return layers;
}

// light-locker (apps.light-locker.gschema.xml, src/gs-monitor.c, src/gs-manager.c): it locks
// `lock-after-screensaver` seconds (GSettings, default 5; 0 disables locking after the
// screensaver) after the X screensaver activates. Under Xfce the X screensaver timeout is set by
// xfce4-power-manager (xfpm-power.c: XSetScreenSaver(blank-on-ac * 60), 0 = never blank,
// presentation mode = 0; the property's default is 10 minutes). light-locker's command-line
// options in the autostart Exec= line override the GSettings values.
constexpr GnomeKey kLlLockAfter{"/apps/light-locker/lock-after-screensaver", "apps.light-locker",
                                "lock-after-screensaver", "u", "uint32 5"};
constexpr GnomeKey kLlLateLocking{"/apps/light-locker/late-locking", "apps.light-locker",
                                  "late-locking", "b", "true"};
constexpr GnomeKey kLlLockOnSuspend{"/apps/light-locker/lock-on-suspend", "apps.light-locker",
                                    "lock-on-suspend", "b", "true"};
constexpr int64_t kXfpmBlankOnAcDefault = 10;  // minutes (xfpm-power.c param spec default)

void CollectLightLocker(const SystemView& view, DconfReader& reader, const PasswdEntry& user,
                        const std::vector<std::string>& groups, const Autostart& light,
                        Warnings& warnings, v1::UserScreenLock* u) {
  u->set_locker("light-locker");
  const auto layers = ReadXfconfLayers(view, user, "xfce4-power-manager", u);
  auto profile = linux_os::ReadDconfProfile(view, user.uid, user.home);
  if (!profile.ok()) AddError(u, "cannot read dconf profile: " + profile.status().message());
  if (u->errors_size() > 0) return;
  for (const auto& w : profile->warnings) {
    warnings.Add((profile->path.empty() ? "dconf profile" : profile->path) + ": " + w);
  }

  // xfce4-power-manager: blank-on-ac (minutes) and presentation-mode.
  auto xfpm = [&](const std::string& path, const std::string& def) {
    auto l = linux_os::LookupXfconf(layers, path, user.name, groups);
    std::pair<std::optional<std::string>, v1::Provenance> r;
    r.second.set_key(path);
    r.second.set_locked(l.locked);
    r.second.set_user_can_override(!l.locked);
    if (l.found && l.property.value) {
      r.first = l.property.value;
      r.second.set_source(l.source);
      r.second.set_line(static_cast<uint32_t>(l.property.line));
      r.second.set_raw(*l.property.value);
    } else {
      r.second.set_source("default:xfce4-power-manager");
      r.second.set_raw(def);
    }
    return r;
  };
  auto [blank_text, blank_from] =
      xfpm("/xfce4-power-manager/blank-on-ac", std::to_string(kXfpmBlankOnAcDefault));
  int64_t blank = kXfpmBlankOnAcDefault;
  if (blank_text) {
    auto n = ParseNumber(*blank_text);
    if (n && *n >= 0 && *n <= 32767 && *n == std::floor(*n)) {
      blank = static_cast<int64_t>(*n);
    } else {
      warnings.Add(Where(blank_from) + ": /xfce4-power-manager/blank-on-ac=" + *blank_text +
                   " is not a whole number of minutes; the default applies");
      blank_from.set_source("default:xfce4-power-manager");
      blank_from.set_line(0);
    }
  }
  u->mutable_idle_seconds()->set_value(blank * 60);
  *u->mutable_idle_seconds()->mutable_from() = blank_from;

  auto [pres_text, pres_from] = xfpm("/xfce4-power-manager/presentation-mode", "false");
  bool presentation = false;
  if (pres_text) {
    if (auto b = ParseKdeBool(*pres_text)) {
      presentation = *b;
    } else {
      warnings.Add(Where(pres_from) + ": /xfce4-power-manager/presentation-mode=" + *pres_text +
                   " is not a boolean; the default applies");
      pres_from.set_source("default:xfce4-power-manager");
      pres_from.set_line(0);
    }
  }
  // Presentation mode sets the X screensaver timeout to 0: the screensaver never activates.
  u->mutable_idle_activation_enabled()->set_value(!presentation);
  *u->mutable_idle_activation_enabled()->mutable_from() = pres_from;

  // light-locker's GSettings through dconf, upstream schema defaults.
  std::map<std::string, SchemaDefault> defaults;
  for (const GnomeKey* k : {&kLlLockAfter, &kLlLateLocking, &kLlLockOnSuspend}) {
    auto parsed = linux_os::ParseVariantText(k->upstream_text, k->type);
    // late-locking and lock-on-suspend defaults are build options (meson_options.txt: true).
    defaults[k->dconf_path] = {
        parsed.ok() ? *parsed : VariantValue{},
        k == &kLlLockAfter ? "default:light-locker" : "default:light-locker (build option)"};
  }
  auto lock_after = ResolveGnomeKey(reader, *profile, kLlLockAfter, defaults, u, warnings);
  auto late = ResolveGnomeKey(reader, *profile, kLlLateLocking, defaults, u, warnings);
  auto on_suspend = ResolveGnomeKey(reader, *profile, kLlLockOnSuspend, defaults, u, warnings);
  if (!lock_after || !late || !on_suspend) return;
  int64_t after = lock_after->value.integer.value_or(5);
  bool late_locking = late->value.boolean.value_or(true);
  bool lock_on_suspend = on_suspend->value.boolean.value_or(true);

  // Command-line options in the autostart entry override GSettings (light-locker.c).
  auto text = view.ReadFile(light.source, kMaxConfigBytes);
  std::string exec;
  if (text.ok()) {
    if (auto v = linux_os::FindIniValue(*text, "Desktop Entry", "Exec")) exec = v->value;
  }
  gchar** argv = nullptr;
  gint argc = 0;
  if (!exec.empty() && g_shell_parse_argv(exec.c_str(), &argc, &argv, nullptr)) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      v1::Provenance cli;
      cli.set_source(light.source);
      cli.set_key("Exec " + arg);
      cli.set_raw(exec);
      cli.set_user_can_override(true);
      std::string value;
      if (StartsWith(arg, "--lock-after-screensaver=")) {
        value = arg.substr(std::string("--lock-after-screensaver=").size());
      } else if (arg == "--lock-after-screensaver" && i + 1 < argc) {
        value = argv[++i];
      }
      if (!value.empty()) {
        auto n = ParseNumber(value);
        if (n && *n >= 0 && *n == std::floor(*n) && *n < 1e9) {
          after = static_cast<int64_t>(*n);
          lock_after->from = cli;
          lock_after->from.set_key("Exec --lock-after-screensaver");
        } else {
          warnings.Add(light.source + ": Exec=" + exec + ": --lock-after-screensaver " + value +
                       " is not a whole number of seconds, ignored");
        }
      } else if (arg == "--late-locking" || arg == "--no-late-locking") {
        late_locking = arg == "--late-locking";
        late->from = cli;
      } else if (arg == "--lock-on-suspend" || arg == "--no-lock-on-suspend") {
        lock_on_suspend = arg == "--lock-on-suspend";
        on_suspend->from = cli;
      }
    }
  }
  g_strfreev(argv);

  // lock-after-screensaver 0 disables locking after the screensaver (gs-manager.c).
  u->mutable_lock_enabled()->set_value(after > 0);
  *u->mutable_lock_enabled()->mutable_from() = lock_after->from;
  u->mutable_lock_delay_seconds()->set_value(after);
  *u->mutable_lock_delay_seconds()->mutable_from() = lock_after->from;
  // gs-monitor.c: with late locking the locker's window covers and grabs the screen at the lock
  // time and the session is handed to the greeter when the screensaver ends (on user activity),
  // so a password is still required; it is recorded, not judged.
  u->mutable_lock_enabled()->mutable_from()->set_raw(lock_after->from.raw() + "; late-locking " +
                                                     (late_locking ? "true" : "false") + " from " +
                                                     Where(late->from));
  u->mutable_lock_on_suspend()->set_value(lock_on_suspend);
  *u->mutable_lock_on_suspend()->mutable_from() = on_suspend->from;
  u->mutable_lock_screen_disabled()->set_value(false);
  u->mutable_lock_screen_disabled()->mutable_from()->set_source("default:light-locker");
  u->mutable_lock_screen_disabled()->mutable_from()->set_key("screen locker");
  u->mutable_lock_screen_disabled()->mutable_from()->set_raw(light.source);
  // xfce4-power-manager's idle suspend is not read, so no suspend path is credited.
  DeriveEffectiveLock(u);
}

void CollectXfceUser(const SystemView& view, DconfReader& reader, const PasswdEntry& user,
                     const std::vector<std::string>& groups, Warnings& warnings,
                     v1::UserScreenLock* u) {
  const Autostart saver = ReadAutostart(view, user, "xfce4-screensaver");
  const Autostart light = ReadAutostart(view, user, "light-locker");
  for (const Autostart* a : {&saver, &light}) {
    if (!a->error.empty()) {
      AddError(u, a->error);
      return;
    }
  }
  if (!saver.enabled && light.enabled) {
    CollectLightLocker(view, reader, user, groups, light, warnings, u);
    return;
  }
  if (!saver.enabled) {
    // No locker starts: nothing ever locks the screen on idle.
    u->set_locker("none");
    v1::Provenance none;
    none.set_source(saver.source.empty() ? "/etc/xdg/autostart" : saver.source);
    none.set_key("no screen locker autostarts (xfce4-screensaver, light-locker)");
    none.set_raw(saver.why.empty() ? "no xfce4-screensaver.desktop or light-locker.desktop"
                                   : saver.why);
    none.set_user_can_override(true);
    for (v1::BoolFact* f : {u->mutable_lock_screen_disabled(), u->mutable_lock_enabled(),
                            u->mutable_idle_activation_enabled()}) {
      *f->mutable_from() = none;
    }
    u->mutable_lock_screen_disabled()->set_value(true);
    u->mutable_lock_enabled()->set_value(false);
    u->mutable_idle_activation_enabled()->set_value(false);
    u->mutable_idle_seconds()->set_value(0);
    *u->mutable_idle_seconds()->mutable_from() = none;
    u->mutable_lock_delay_seconds()->set_value(0);
    *u->mutable_lock_delay_seconds()->mutable_from() = none;
    DeriveEffectiveLock(u);
    return;
  }
  u->set_locker("xfce4-screensaver");

  const auto layers = ReadXfconfLayers(view, user, "xfce4-screensaver", u);
  if (u->errors_size() > 0) return;

  struct Prop {
    std::optional<std::string> value;
    v1::Provenance from;
  };
  auto lookup = [&](const std::string& path, const std::string& def) {
    auto l = linux_os::LookupXfconf(layers, path, user.name, groups);
    Prop p;
    p.from.set_key(path);
    p.from.set_locked(l.locked);
    p.from.set_user_can_override(!l.locked);
    if (l.found) {
      p.value = l.property.value;
      p.from.set_source(l.source);
      p.from.set_line(static_cast<uint32_t>(l.property.line));
      p.from.set_raw(*l.property.value);
    } else {
      p.from.set_source("default:xfce4-screensaver");
      p.from.set_raw(def);
    }
    return p;
  };
  auto as_bool = [&](const std::string& path, bool def) {
    Prop p = lookup(path, def ? "true" : "false");
    bool v = def;
    if (p.value) {
      if (auto b = ParseKdeBool(*p.value)) {
        v = *b;
      } else {
        warnings.Add(Where(p.from) + ": " + path + "=" + *p.value +
                     " is not a boolean; the default applies");
        p.from.set_source("default:xfce4-screensaver");
        p.from.set_line(0);
      }
    }
    return std::make_pair(v, p.from);
  };
  auto minutes = [&](const std::string& path, int64_t def, v1::IntFact* f) {
    Prop p = lookup(path, std::to_string(def));
    int64_t v = def;
    if (p.value) {
      auto n = ParseNumber(*p.value);
      if (n && *n >= 0 && *n < 1e9 && *n == std::floor(*n)) {
        v = static_cast<int64_t>(*n);
      } else {
        warnings.Add(Where(p.from) + ": " + path + "=" + *p.value +
                     " is not a whole number of minutes; the default applies");
        p.from.set_source("default:xfce4-screensaver");
        p.from.set_line(0);
      }
    }
    f->set_value(v * 60);
    *f->mutable_from() = p.from;
  };
  // Both switches must be on for idle to start the screensaver / for the screensaver to lock;
  // the fact carries the provenance of the one that is off (or of the first when both are on).
  auto both = [&](const std::string& a, const std::string& b, v1::BoolFact* f) {
    auto [va, fa] = as_bool(a, true);
    auto [vb, fb] = as_bool(b, true);
    f->set_value(va && vb);
    *f->mutable_from() = !va ? fa : (!vb ? fb : fa);
    if (va && vb && fb.user_can_override()) f->mutable_from()->set_user_can_override(true);
  };
  both("/saver/enabled", "/saver/idle-activation/enabled", u->mutable_idle_activation_enabled());
  minutes("/saver/idle-activation/delay", 5, u->mutable_idle_seconds());
  both("/lock/enabled", "/lock/saver-activation/enabled", u->mutable_lock_enabled());
  minutes("/lock/saver-activation/delay", 0, u->mutable_lock_delay_seconds());
  u->mutable_lock_screen_disabled()->set_value(false);
  u->mutable_lock_screen_disabled()->mutable_from()->set_source("default:xfce4-screensaver");
  u->mutable_lock_screen_disabled()->mutable_from()->set_key("screen locker");
  u->mutable_lock_screen_disabled()->mutable_from()->set_raw(saver.source);
  // xfce4-power-manager's idle suspend is not read, so no suspend path is credited.
  DeriveEffectiveLock(u);
}

// ---- sway ------------------------------------------------------------------------------------

// Expands an include argument: "~/" and "$HOME/" to the home directory, and a trailing "*" in
// the last component to the directory's entries in name order.
std::vector<std::string> ExpandInclude(const SystemView& view, std::string arg,
                                       const std::string& home) {
  if (StartsWith(arg, "~/")) arg = home + arg.substr(1);
  if (StartsWith(arg, "$HOME/")) arg = home + arg.substr(5);
  size_t slash = arg.rfind('/');
  if (slash == std::string::npos || arg.find('*', slash) == std::string::npos) return {arg};
  const std::string dir = arg.substr(0, slash);
  const std::string pattern = arg.substr(slash + 1);
  std::vector<std::string> out;
  auto entries = view.ListDir(dir);
  if (!entries.ok()) return out;
  for (const DirEntry& e : *entries) {
    if (e.type == FileType::kDirectory) continue;
    if (g_pattern_match_simple(pattern.c_str(), e.name.c_str())) out.push_back(dir + "/" + e.name);
  }
  return out;
}

void CollectSwayUser(const SystemView& view, const PasswdEntry& user, Warnings& warnings,
                     v1::UserScreenLock* u) {
  u->set_locker("swaylock");
  // sway reads the first config that exists, in sway's own search order (XDG_CONFIG_HOME is
  // assumed unset, as a login session has it).
  const std::string& h = user.home;
  std::string config;
  std::optional<std::string> text;
  for (const std::string& path :
       {h + "/.sway/config", h + "/.config/sway/config", h + "/.i3/config",
        h + "/.config/i3/config", std::string("/etc/sway/config"), std::string("/etc/i3/config")}) {
    auto t = view.ReadFile(path, kMaxConfigBytes);
    if (t.ok()) {
      config = path;
      text = std::move(t).value();
      break;
    }
    if (t.status().code() != Status::Code::kNotFound) {
      AddError(u, "cannot read " + path + ": " + t.status().message());
      return;
    }
  }
  linux_os::SwayIdle idle;
  std::map<std::string, std::string> vars;
  std::string idle_source = config;  // the file the exec swayidle line is in
  if (text) {
    std::vector<std::string> includes;
    linux_os::ParseSwayConfig(*text, config, &vars, &includes, &idle);
    // Included files, one level deep (sway's default config includes /etc/sway/config.d/*).
    for (const std::string& inc : includes) {
      for (const std::string& path : ExpandInclude(view, inc, h)) {
        auto t = view.ReadFile(path, kMaxConfigBytes);
        if (!t.ok()) {
          if (t.status().code() != Status::Code::kNotFound) {
            AddError(u, "cannot read " + path + ": " + t.status().message());
          }
          continue;
        }
        const bool had = idle.swayidle_found;
        std::vector<std::string> nested;
        linux_os::ParseSwayConfig(*t, path, &vars, &nested, &idle);
        if (!had && idle.swayidle_found) idle_source = path;
        if (!nested.empty()) warnings.Add(path + ": nested include lines are not followed");
      }
    }
  }
  if (u->errors_size() > 0) return;
  // swayidle always loads its config file too (-C, else the first that exists).
  std::string idle_config;
  if (idle.swayidle_found) {
    std::vector<std::string> candidates = {h + "/.config/swayidle/config", h + "/.swayidle/config",
                                           "/etc/swayidle/config"};
    if (!idle.config_file.empty()) {
      std::string c = idle.config_file;
      if (StartsWith(c, "~/")) c = h + c.substr(1);
      candidates = {c};
    }
    for (const std::string& path : candidates) {
      auto t = view.ReadFile(path, kMaxConfigBytes);
      if (!t.ok()) {
        if (t.status().code() == Status::Code::kNotFound) continue;
        AddError(u, "cannot read " + path + ": " + t.status().message());
        return;
      }
      idle_config = path;
      linux_os::ParseSwayidleConfig(*t, path, &idle);
      break;
    }
  }
  auto from = [&](const std::string& key, const std::string& source, int line,
                  const std::string& raw) {
    v1::Provenance p;
    p.set_key(key);
    p.set_source(source.empty() ? "default:sway" : source);
    p.set_line(static_cast<uint32_t>(line));
    p.set_raw(raw);
    // The user can always edit their own sway config (or create one that replaces
    // /etc/sway/config), so nothing here is locked.
    p.set_user_can_override(true);
    return p;
  };
  auto event = [&](const std::string& key, const std::optional<linux_os::SwayIdleEvent>& e,
                   const std::string& absent) {
    return e ? from(key, e->source, e->line, e->raw)
             : from(key, idle_source, idle.swayidle_line,
                    absent + (idle_config.empty() ? "" : " (nor in " + idle_config + ")"));
  };
  const bool runs = idle.swayidle_found && idle.config_error.empty();
  if (runs && idle.before_sleep_lock && !idle.wait) {
    warnings.Add(idle_source + ":" + std::to_string(idle.swayidle_line) +
                 ": swayidle runs without -w: the machine may sleep before swaylock is up");
  }
  u->mutable_idle_activation_enabled()->set_value(runs);
  if (runs) {
    *u->mutable_idle_activation_enabled()->mutable_from() =
        from("exec swayidle", idle_source, idle.swayidle_line, idle.swayidle_raw);
  } else if (idle.swayidle_found) {
    *u->mutable_idle_activation_enabled()->mutable_from() =
        from("exec swayidle", idle_config, 0, idle_config + " " + idle.config_error);
  } else {
    *u->mutable_idle_activation_enabled()->mutable_from() =
        from("exec swayidle", config, 0,
             config.empty() ? "no sway config (~/.config/sway/config, /etc/sway/config, ...)"
                            : "no `exec swayidle` line");
  }
  const bool lock_timeout = runs && idle.lock_timeout.has_value();
  u->mutable_lock_enabled()->set_value(lock_timeout);
  u->mutable_idle_seconds()->set_value(lock_timeout ? idle.lock_timeout->seconds : 0);
  v1::Provenance timeout_from =
      event("swayidle timeout", idle.lock_timeout, "no `timeout N 'swaylock ...'`");
  if (!idle.swayidle_found) timeout_from = u->idle_activation_enabled().from();
  *u->mutable_idle_seconds()->mutable_from() = timeout_from;
  *u->mutable_lock_enabled()->mutable_from() = timeout_from;
  u->mutable_lock_delay_seconds()->set_value(idle.grace ? idle.grace->seconds : 0);
  *u->mutable_lock_delay_seconds()->mutable_from() =
      idle.grace ? from("swaylock --grace", idle.grace->source, idle.grace->line, idle.grace->raw)
                 : from("swaylock --grace", "default:swaylock", 0, "no grace period");
  u->mutable_lock_screen_disabled()->set_value(false);
  *u->mutable_lock_screen_disabled()->mutable_from() =
      from("screen locker", "default:sway", 0, "swaylock");
  u->mutable_suspend_idle_seconds()->set_value(
      runs && idle.suspend_timeout ? idle.suspend_timeout->seconds : 0);
  *u->mutable_suspend_idle_seconds()->mutable_from() =
      event("swayidle timeout", idle.suspend_timeout, "no suspend timeout");
  u->mutable_lock_on_suspend()->set_value(runs && idle.before_sleep_lock.has_value());
  *u->mutable_lock_on_suspend()->mutable_from() =
      event("swayidle before-sleep", idle.before_sleep_lock, "no before-sleep 'swaylock'");
  DeriveEffectiveLock(u);
}

// ---- which desktops each user uses -----------------------------------------------------------

std::string DesktopLabel(v1::Desktop d) {
  switch (d) {
    case v1::GNOME:
      return "GNOME";
    case v1::KDE:
      return "KDE";
    case v1::XFCE:
      return "XFCE";
    case v1::SWAY:
      return "SWAY";
    default:
      return "?";
  }
}

// Desktops with a process running as each uid now (/proc/PID/comm, owner from Stat).
std::map<uint32_t, std::set<std::string>> RunningDesktops(const SystemView& view,
                                                          Warnings& warnings) {
  std::map<uint32_t, std::set<std::string>> out;
  auto entries = view.ListDir("/proc");
  if (!entries.ok()) {
    if (entries.status().code() != Status::Code::kNotFound) {
      warnings.Add("cannot list /proc: " + entries.status().message() +
                   " (running sessions not considered)");
    }
    return out;
  }
  for (const DirEntry& e : *entries) {
    if (e.name.empty() || e.name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string dir = "/proc/" + e.name;
    auto comm = view.ReadFile(dir + "/comm", 4096);
    if (!comm.ok()) continue;  // processes come and go
    const std::string desktop = linux_os::DesktopOfProcess(*comm);
    if (desktop.empty()) continue;
    auto info = view.Stat(dir);
    if (!info.ok()) continue;
    out[info->uid].insert(desktop);
  }
  return out;
}

void CollectUserSessions(const SystemView& view, const PasswdEntry& user, const Sessions& sessions,
                         const std::vector<v1::Desktop>& judged,
                         const std::map<uint32_t, std::set<std::string>>& running,
                         Warnings& warnings, v1::ScreenLockEvidence* sl) {
  v1::UserSessions* us = sl->add_user_sessions();
  us->set_user(user.name);
  us->set_uid(user.uid);
  for (v1::Desktop d : judged) us->add_judged(d);
  if (auto it = running.find(user.uid); it != running.end()) {
    for (const auto& d : it->second) us->add_running(d);
  }
  // AccountsService is what GDM and LightDM read first; ~/.dmrc is the older record.
  for (const auto& [path, accounts] : std::vector<std::pair<std::string, bool>>{
           {"/var/lib/AccountsService/users/" + user.name, true}, {user.home + "/.dmrc", false}}) {
    auto text = view.ReadFile(path, kMaxConfigBytes);
    if (!text.ok()) {
      if (text.status().code() != Status::Code::kNotFound) {
        warnings.Add("cannot read " + path + ": " + text.status().message());
      }
      continue;
    }
    auto v = accounts ? linux_os::AccountsServiceSession(*text)
                      : linux_os::FindIniValue(*text, "Desktop", "Session");
    if (!v || v->value.empty()) continue;
    auto* f = us->mutable_default_session();
    f->set_value(v->value);
    f->mutable_from()->set_source(path);
    f->mutable_from()->set_line(static_cast<uint32_t>(v->line));
    f->mutable_from()->set_raw(v->raw);
    f->mutable_from()->set_key(accounts ? "[User] Session" : "[Desktop] Session");
    f->mutable_from()->set_user_can_override(true);
    if (sessions.by_name.count(v->value) == 0) {
      warnings.Add(path + ":" + std::to_string(v->line) + ": default session '" + v->value +
                   "' is not an installed session");
    }
    break;
  }
}

std::string DesktopRule(const Sessions& sessions, v1::Desktop d, const v1::UserSessions& us) {
  std::string rule = "installed (" + Join(sessions.files_of.at(d), ", ") +
                     "): the login screen offers every installed session to every user";
  if (us.has_default_session()) {
    const auto& ds = us.default_session();
    auto it = sessions.by_name.find(ds.value());
    const bool is_default = it != sessions.by_name.end() && it->second == d;
    rule += std::string("; ") + (is_default ? "default session" : "not the default session") +
            " ('" + ds.value() + "' from " + ds.from().source() + ":" +
            std::to_string(ds.from().line()) + ")";
  }
  for (const auto& r : us.running()) {
    if (r == DesktopLabel(d)) rule += "; running now";
  }
  return rule;
}

}  // namespace

v1::Evidence CollectScreenLock(const SystemView& view) {
  v1::Evidence ev;
  v1::ScreenLockEvidence* sl = ev.mutable_screen_lock();
  Warnings warnings(sl);
  // Collected on every machine: it is what protects one without a graphical session.
  CollectShellTimeout(view, warnings, sl);

  auto sessions = ScanSessions(view);
  if (!sessions.ok()) {
    ev.set_collection_error(sessions.status().message());
    return ev;
  }
  for (const auto& f : sessions->files) sl->add_sessions_found(f);
  if (sessions->files.empty()) {
    sl->set_not_applicable_reason(
        "no graphical session installed (no /usr/share/xsessions or "
        "/usr/share/wayland-sessions entries)");
    return ev;
  }
  for (const auto& f : sessions->unsupported) sl->add_unsupported_sessions(f);
  std::vector<v1::Desktop> judged;
  for (const auto& [d, files] : sessions->files_of) judged.push_back(d);
  if (judged.empty()) return ev;

  auto users = linux_os::ReadHumanUsers(view);
  if (!users.ok()) {
    ev.set_collection_error("cannot read local accounts: " + users.status().message());
    return ev;
  }
  if (users->users.empty()) {
    sl->set_not_applicable_reason("no human users (UID " + std::to_string(users->uid_min) + ".." +
                                  std::to_string(users->uid_max) +
                                  " with a login shell) can log in to the installed desktops");
    return ev;
  }

  DconfReader reader(view);
  std::map<std::string, SchemaDefault> defaults;
  if (sessions->gnome) {
    defaults = ReadSchemaDefaults(view, warnings);
    CheckUncompiledKeyfiles(view, warnings);
  }
  const auto groups = sessions->xfce ? ReadGroups(view, users->users, warnings)
                                     : std::map<std::string, std::vector<std::string>>{};
  const auto running = RunningDesktops(view, warnings);
  for (const PasswdEntry& user : users->users) {
    // Every installed desktop is judged for every user: a default session or a running one is
    // a preference, and the login screen lets the user pick any other (docs/checks.md).
    CollectUserSessions(view, user, *sessions, judged, running, warnings, sl);
    const v1::UserSessions& us = sl->user_sessions(sl->user_sessions_size() - 1);
    for (v1::Desktop d : judged) {
      v1::UserScreenLock* u = sl->add_users();
      u->set_user(user.name);
      u->set_uid(user.uid);
      u->set_desktop(d);
      u->set_desktop_rule(DesktopRule(*sessions, d, us));
      switch (d) {
        case v1::GNOME:
          CollectGnomeUser(view, reader, user, defaults, warnings, u);
          break;
        case v1::KDE:
          CollectKdeUser(view, user, warnings, u);
          break;
        case v1::XFCE: {
          auto g = groups.find(user.name);
          CollectXfceUser(view, reader, user,
                          g == groups.end() ? std::vector<std::string>{} : g->second, warnings, u);
          break;
        }
        case v1::SWAY:
          CollectSwayUser(view, user, warnings, u);
          break;
        default:
          break;
      }
    }
  }
  for (const auto& w : reader.warnings()) warnings.Add(w);
  return ev;
}

}  // namespace vigil::collectors

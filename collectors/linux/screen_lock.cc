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
#include "collectors/linux/gvdb.h"
#include "collectors/linux/kconfig.h"
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
      if (StartsWith(lower, "gnome") || StartsWith(lower, "ubuntu") ||
          exec.find("gnome-session") != std::string::npos) {
        s.gnome = true;
      } else if (StartsWith(lower, "plasma") || exec.find("startplasma") != std::string::npos ||
                 exec.find("startkde") != std::string::npos) {
        s.kde = true;
      } else {
        s.unsupported.push_back(path);
      }
    }
  }
  return s;
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
constexpr const GnomeKey* kGnomeKeys[] = {&kIdleDelay, &kLockEnabled, &kLockDelay, &kIdleActivation,
                                          &kDisableLock};

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

// ---- KDE -------------------------------------------------------------------------------------

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
}

}  // namespace

v1::Evidence CollectScreenLock(const SystemView& view) {
  v1::Evidence ev;
  v1::ScreenLockEvidence* sl = ev.mutable_screen_lock();
  Warnings warnings(sl);

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
  if (!sessions->gnome && !sessions->kde) return ev;

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
  for (const PasswdEntry& user : users->users) {
    if (sessions->gnome) {
      v1::UserScreenLock* u = sl->add_users();
      u->set_user(user.name);
      u->set_uid(user.uid);
      u->set_desktop(v1::GNOME);
      CollectGnomeUser(view, reader, user, defaults, warnings, u);
    }
    if (sessions->kde) {
      v1::UserScreenLock* u = sl->add_users();
      u->set_user(user.name);
      u->set_uid(user.uid);
      u->set_desktop(v1::KDE);
      CollectKdeUser(view, user, warnings, u);
    }
  }
  for (const auto& w : reader.warnings()) warnings.Add(w);
  return ev;
}

}  // namespace vigil::collectors

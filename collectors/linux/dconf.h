// dconf as GNOME applications see it: which profile a user gets, which databases it stacks, and
// the value and lock state dconf's engine (dconf-engine.c, dconf_engine_read) yields for a key.
//
// Profiles are looked up as dconf does: /run/dconf/user/UID, then /etc/dconf/profile/user,
// /usr/local/share/dconf/profile/user, /usr/share/dconf/profile/user; with none, the user gets
// only "user-db:user". Databases are the compiled GVDB files (what takes effect), not keyfiles.
// Reading goes through the SystemView; ParseDconfProfile is pure. A DconfReader caches opened
// databases (system databases are shared by every user) and is not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/linux/gvdb.h"
#include "collectors/system_view.h"
#include "common/status.h"

namespace vigil::collectors::linux_os {

struct DconfSource {
  enum class Kind { kUser, kSystem, kFile };
  Kind kind = Kind::kUser;
  std::string name;       // the NAME in user-db:NAME / system-db:NAME, or the path of file-db:PATH
  std::string path;       // the compiled database file, absolute inside the view
  bool writable = false;  // only a user-db is written by the user's dconf service
};

struct DconfProfile {
  std::string path;  // the profile file used; empty when none exists (built-in default)
  std::vector<DconfSource> sources;
  std::vector<std::string> warnings;  // unknown or unsupported lines
};

// Parses profile text. `home` is the user's home directory (user-db files live in
// HOME/.config/dconf/NAME). Comments start with '#'.
DconfProfile ParseDconfProfile(std::string_view text, const std::string& home);

// Finds and parses the profile a user gets. Errors only when a profile exists but cannot be read.
Result<DconfProfile> ReadDconfProfile(const SystemView& view, uint32_t uid,
                                      const std::string& home);

// The outcome of reading one key through a profile.
struct DconfRead {
  std::optional<VariantValue> value;  // nullopt: no database sets it (the schema default applies)
  std::string source;                 // database path the value came from
  bool locked = false;                // a lock in a system database (sources after the first)
  std::string locked_by;              // the database holding the lock
  bool writable = false;              // the user can change it (first source writable, no lock)
};

class DconfReader {
 public:
  explicit DconfReader(const SystemView& view) : view_(view) {}

  // dconf_engine_read: the last source (index > 0) whose locks table lists `key` sets the lock
  // level; the value is the first source from that level on that has the key. Errors when a
  // database exists but cannot be read or parsed, because its value might be the one in effect.
  Result<DconfRead> Read(const DconfProfile& profile, std::string_view key);

  // Problems opening databases that dconf tolerates (e.g. a missing system database, which dconf
  // treats as empty after a warning), each reported once.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Database {
    std::optional<GvdbTable> values;  // nullopt: the file does not exist
    std::optional<GvdbTable> locks;
  };
  Result<const Database*> Open(const DconfSource& source);

  const SystemView& view_;
  std::map<std::string, std::unique_ptr<Result<Database>>> cache_;
  std::vector<std::string> warnings_;
};

}  // namespace vigil::collectors::linux_os

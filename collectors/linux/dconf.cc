#include "collectors/linux/dconf.h"

#include <utility>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

DconfProfile ParseDconfProfile(std::string_view text, const std::string& home) {
  DconfProfile out;
  for (std::string_view line : SplitLines(text)) {
    // dconf_engine_profile_handle_line: everything from '#' is a comment; trim whitespace.
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    while (!line.empty() && IsSpace(line.front())) line.remove_prefix(1);
    while (!line.empty() && IsSpace(line.back())) line.remove_suffix(1);
    if (line.empty()) continue;

    size_t colon = line.find(':');
    std::string_view kind = colon == std::string_view::npos ? line : line.substr(0, colon);
    std::string_view name = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    // dconf_engine_source_new rejects empty names; a '/' would escape the database directory.
    bool bad_name = name.empty() || (kind != "file-db" && name.find('/') != std::string_view::npos);
    DconfSource src;
    src.name = std::string(name);
    if (kind == "user-db" && !bad_name) {
      src.kind = DconfSource::Kind::kUser;
      src.path = home + "/.config/dconf/" + src.name;
      src.writable = true;
    } else if (kind == "system-db" && !bad_name) {
      src.kind = DconfSource::Kind::kSystem;
      src.path = "/etc/dconf/db/" + src.name;
    } else if (kind == "file-db" && !bad_name && name.front() == '/') {
      src.kind = DconfSource::Kind::kFile;
      src.path = src.name;
    } else if (kind == "service-db") {
      out.warnings.push_back("dconf profile line '" + std::string(line) +
                             "': service databases are not checked");
      continue;
    } else {
      out.warnings.push_back("dconf profile line '" + std::string(line) +
                             "': unknown dconf database description, ignored (as dconf does)");
      continue;
    }
    out.sources.push_back(std::move(src));
  }
  return out;
}

Result<DconfProfile> ReadDconfProfile(const SystemView& view, uint32_t uid,
                                      const std::string& home) {
  const std::string candidates[] = {
      "/run/dconf/user/" + std::to_string(uid),
      "/etc/dconf/profile/user",
      "/usr/local/share/dconf/profile/user",
      "/usr/share/dconf/profile/user",
  };
  for (const std::string& path : candidates) {
    auto text = view.ReadFile(path, 1u << 20);
    if (!text.ok()) {
      if (text.status().code() == Status::Code::kNotFound) continue;
      return Status(text.status());
    }
    DconfProfile p = ParseDconfProfile(*text, home);
    p.path = path;
    return p;
  }
  return ParseDconfProfile("user-db:user", home);
}

Result<const DconfReader::Database*> DconfReader::Open(const DconfSource& source) {
  auto it = cache_.find(source.path);
  if (it == cache_.end()) {
    Database db;
    Status failure;
    auto bytes = view_.ReadFile(source.path);
    if (!bytes.ok()) {
      if (bytes.status().code() != Status::Code::kNotFound) {
        failure = Status::IoError("cannot read dconf database " + source.path + ": " +
                                  bytes.status().message());
      } else if (source.kind != DconfSource::Kind::kUser) {
        // dconf warns and treats it as empty; an administrator probably forgot `dconf update`.
        warnings_.push_back("dconf database " + source.path +
                            " is in the profile but does not exist (treated as empty)");
      }
    } else {
      auto table = GvdbTable::Parse(std::move(bytes).value());
      if (!table.ok()) {
        failure = Status::Corruption("dconf database " + source.path +
                                     " is unreadable: " + table.status().message());
      } else {
        db.values = std::move(table).value();
        // Locks count only in databases users cannot write (dconf ignores them in source 0).
        if (source.kind != DconfSource::Kind::kUser) {
          auto locks = db.values->GetTable(".locks");
          if (!locks.ok()) {
            failure = Status::Corruption("dconf database " + source.path +
                                         " has a corrupt lock table: " + locks.status().message());
          } else {
            db.locks = std::move(locks).value();
          }
        }
      }
    }
    auto entry = failure.ok() ? std::make_unique<Result<Database>>(std::move(db))
                              : std::make_unique<Result<Database>>(std::move(failure));
    it = cache_.emplace(source.path, std::move(entry)).first;
  }
  if (!it->second->ok()) return Status(it->second->status());
  return &it->second->value();
}

Result<DconfRead> DconfReader::Read(const DconfProfile& profile, std::string_view key) {
  DconfRead r;
  const auto& sources = profile.sources;
  size_t lock_level = 0;
  // Step 1 of dconf_engine_read: locks, from the last source down to (not including) source 0.
  for (size_t i = sources.size(); i-- > 1;) {
    auto db = Open(sources[i]);
    if (!db.ok()) return Status(db.status());
    if ((*db)->locks && (*db)->locks->HasValue(key)) {
      lock_level = i;
      r.locked = true;
      r.locked_by = sources[i].path;
      break;
    }
  }
  // Step 3: the first source from the lock level on that has a value.
  for (size_t i = lock_level; i < sources.size(); ++i) {
    auto db = Open(sources[i]);
    if (!db.ok()) return Status(db.status());
    if (!(*db)->values) continue;
    auto value = (*db)->values->GetValue(key);
    if (!value.ok()) {
      return Status::Corruption("dconf database " + sources[i].path + ": " +
                                value.status().message());
    }
    if (value->has_value()) {
      r.value = std::move(value).value();
      r.source = sources[i].path;
      break;
    }
  }
  // dconf_engine_is_writable: writes go to source 0, and only if it is writable and no lock.
  r.writable = !sources.empty() && sources[0].writable && !r.locked;
  return r;
}

}  // namespace vigil::collectors::linux_os

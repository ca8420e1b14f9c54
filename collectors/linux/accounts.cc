#include "collectors/linux/accounts.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::optional<uint32_t> ParseU32(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  std::set<std::string> seen;
  for (std::string_view line : Split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
    auto f = Split(line, ':');
    if (f.size() != 7 || f[0].empty()) continue;
    auto uid = ParseU32(f[2]);
    auto gid = ParseU32(f[3]);
    if (!uid || !gid) continue;
    if (!seen.insert(std::string(f[0])).second) continue;
    out.push_back({std::string(f[0]), *uid, *gid, std::string(f[5]), std::string(f[6])});
  }
  return out;
}

std::map<std::string, std::string> ParseLoginDefs(std::string_view text) {
  std::map<std::string, std::string> out;
  for (std::string_view line : Split(text, '\n')) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    size_t ws = line.find_first_of(" \t");
    if (ws == std::string_view::npos) continue;
    std::string_view key = line.substr(0, ws);
    std::string_view value = Trim(line.substr(ws));
    if (size_t hash = value.find('#'); hash != std::string_view::npos)
      value = Trim(value.substr(0, hash));
    if (!value.empty() && value.front() == '"' && value.back() == '"' && value.size() >= 2) {
      value = value.substr(1, value.size() - 2);
    }
    out[std::string(key)] = std::string(value);
  }
  return out;
}

bool IsLoginShell(std::string_view shell) {
  if (shell.empty()) return true;  // empty shell means /bin/sh
  size_t slash = shell.rfind('/');
  std::string_view base = slash == std::string_view::npos ? shell : shell.substr(slash + 1);
  return base != "nologin" && base != "false" && base != "sync" && base != "halt" &&
         base != "shutdown";
}

Result<HumanUsersResult> ReadHumanUsers(const SystemView& view) {
  HumanUsersResult r;
  auto defs_text = view.ReadFile("/etc/login.defs");
  if (defs_text.ok()) {
    auto defs = ParseLoginDefs(*defs_text);
    if (auto it = defs.find("UID_MIN"); it != defs.end()) {
      if (auto v = ParseU32(it->second)) r.uid_min = *v;
    }
    if (auto it = defs.find("UID_MAX"); it != defs.end()) {
      if (auto v = ParseU32(it->second)) r.uid_max = *v;
    }
  } else if (defs_text.status().code() != Status::Code::kNotFound) {
    return defs_text.status();
  }
  auto passwd = view.ReadFile("/etc/passwd");
  if (!passwd.ok()) return passwd.status();
  for (auto& e : ParsePasswd(*passwd)) {
    if (e.uid >= r.uid_min && e.uid <= r.uid_max && IsLoginShell(e.shell)) r.users.push_back(e);
  }
  std::sort(r.users.begin(), r.users.end(),
            [](const PasswdEntry& a, const PasswdEntry& b) { return a.uid < b.uid; });
  return r;
}

}  // namespace vigil::collectors::linux_os

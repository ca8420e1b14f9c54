// Local accounts and login.defs, shared by the Linux collectors. Parsers are pure functions over
// text; the Read* helpers go through the SystemView.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/system_view.h"
#include "common/status.h"

namespace vigil::collectors::linux_os {

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
  std::string shell;
};

// Parses /etc/passwd text. Malformed lines are skipped; for a duplicated name the first wins
// (as getpwnam does).
std::vector<PasswdEntry> ParsePasswd(std::string_view text);

// Parses login.defs-style "KEY VALUE" text (comments with '#'); the last occurrence wins.
std::map<std::string, std::string> ParseLoginDefs(std::string_view text);

// True when the shell lets the account log in (not nologin/false, not empty... empty means
// /bin/sh).
bool IsLoginShell(std::string_view shell);

struct HumanUsersResult {
  std::vector<PasswdEntry> users;  // UID_MIN..UID_MAX with a login shell, sorted by uid
  uint32_t uid_min = 1000;
  uint32_t uid_max = 60000;
};

// Reads /etc/passwd and /etc/login.defs (UID_MIN, UID_MAX; defaults 1000, 60000).
Result<HumanUsersResult> ReadHumanUsers(const SystemView& view);

}  // namespace vigil::collectors::linux_os

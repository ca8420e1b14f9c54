// /etc/shadow and /etc/login.defs (both owned by the shadow suite), parsed as pure functions. Only
// what compliance needs is kept: whether the hash field is empty or locked, and the maximum
// password age. The hash itself never leaves this parser, so evidence can never carry a password
// hash.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct ShadowEntry {
  std::string name;
  bool empty_password = false;  // hash field empty: pam_unix (with nullok) lets anyone in
  bool locked = false;          // hash starts with '!' or '*' (includes "!!", "*LK*", "!$6$...")
  // Field 5 (sp_max): -1 when empty, meaning the password never expires. nullopt when the field
  // is not a number (shadow's own parser would reject the whole line).
  std::optional<int64_t> max_days;
  std::string max_days_raw;  // field 5 as written
  int line_no = 0;
};

// Lines with fewer than 8 fields are skipped; for a duplicated name the first wins, as getspnam
// does.
std::vector<ShadowEntry> ParseShadow(std::string_view text);

// One login.defs value with the line it came from.
struct LoginDefsValue {
  std::string value;
  int line = 0;
  std::string raw;  // the line as written, trimmed
};

// Parses /etc/login.defs as shadow's def_load (lib/getdef.c) does: '#' starts a comment only at
// the beginning of a line; the value starts after the blanks and quotes following the key and
// ends at the next '"' (so "PASS_MAX_DAYS 90 # site" has the value "90 # site", which shadow then
// rejects as a number); a later line for the same key wins.
std::map<std::string, LoginDefsValue> ParseLoginDefsLines(std::string_view text);

// shadow's getdef_num/getdef_long: strtol with base 0 over the whole value. nullopt when the value
// is not a number; shadow then logs "configuration error" and uses the built-in default.
std::optional<int64_t> LoginDefsNumber(std::string_view value);

}  // namespace vigil::collectors::linux_os

// /etc/shadow, parsed as a pure function. Only what compliance needs is kept: whether the hash
// field is empty or locked, and the maximum password age. The hash itself never leaves this
// parser, so evidence can never carry a password hash.
#pragma once

#include <cstdint>
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

}  // namespace vigil::collectors::linux_os

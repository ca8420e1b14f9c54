// A parser for KDE's KConfig INI files (kscreenlockerrc, kdeglobals, ...) and the cascade KConfig
// applies across them. Pure functions over text; no I/O.
//
// KConfig reads files from lowest to highest priority (/etc/xdg/... then ~/.config/...); a later
// file overrides an earlier one unless the earlier one marked the entry immutable (`Key[$i]=v`),
// its group immutable (`[Group][$i]`), or the whole file immutable (a `[$i]` line before any
// group). That immutability is how administrators lock settings, so the merge result records it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct KConfigEntry {
  std::string value;  // unescaped (\s, \t, \n, \r, \\, \xHH)
  bool immutable = false;
  bool deleted = false;  // Key[$d]: hides the value of lower-priority files
  std::string raw;       // the line as written, for provenance
  int line = 0;          // 1-based
};

struct KConfigGroup {
  bool immutable = false;
  std::map<std::string, KConfigEntry> entries;
};

struct KConfigFile {
  bool immutable = false;  // a file-level [$i]
  // Nested groups ([A][B]) are named "A/B"; the unnamed group before any header is "".
  std::map<std::string, KConfigGroup> groups;
  std::vector<std::string> warnings;  // lines KConfig would ignore
};

// Parses one file. Comments start with '#'; localized entries (Key[de]=...) are skipped because
// only the unlocalized value is used here; within a file the last entry wins unless an earlier
// one was immutable.
KConfigFile ParseKConfig(std::string_view text);

struct KConfigValue {
  std::string value;
  std::string source;  // the file the value came from
  std::string raw;
  int line = 0;  // 1-based line in `source`
};

// One file of a cascade, lowest priority first.
struct KConfigLayer {
  std::string source;
  KConfigFile file;
};

// What KConfig would read for group/key across the layers. `locked_by` names the file that made
// the key immutable, even when the key itself is absent there (an immutable group or file), since
// then no higher layer can set it either.
struct KConfigLookup {
  bool found = false;
  KConfigValue value;
  bool locked = false;
  std::string locked_by;
};
KConfigLookup LookupKConfig(const std::vector<KConfigLayer>& layers, const std::string& group,
                            const std::string& key);

}  // namespace vigil::collectors::linux_os

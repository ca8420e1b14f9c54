// PAM configuration (/etc/pam.d/*): a pure parser with libpam's line rules, and a resolver that
// follows @include / include / substack through the SystemView to list one management group's
// stack (e.g. every "password" module a password change goes through).
//
// Parsing follows Linux-PAM's _pam_assemble_line / _pam_parse_conf_file: a '#' anywhere ends the
// line, a trailing '\' joins the next non-empty line, the type is case-insensitive and may carry a
// '-' prefix (module silently skipped when missing), and a token that starts with '[' runs to the
// first unescaped ']' (so "[success=1 default=ignore]" is one control and "[a b]" one argument).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/system_view.h"

namespace vigil::collectors::linux_os {

struct PamLine {
  // Lower-cased "auth", "account", "password", "session"; "@include" for Debian's directive.
  std::string type;
  bool silent_if_missing = false;  // the type was written with a leading '-'
  // As written, brackets included: "required", "[success=1 default=ignore]", "include", ...
  std::string control;
  // Module path as written ("pam_unix.so", "/lib/security/pam_unix.so"), or the include target.
  std::string module;
  std::vector<std::string> args;  // brackets of "[...]" arguments removed, as libpam does
  int line_no = 0;                // first physical line of this logical line (1-based)
  std::string text;               // the logical line, continuations joined, comment removed
};

// Parses one PAM configuration file. Lines with too few fields are skipped (libpam logs and
// ignores them too); never fails.
std::vector<PamLine> ParsePamConfig(std::string_view text);

// "pam_unix.so" for "/usr/lib/x86_64-linux-gnu/security/pam_unix.so".
std::string_view PamModuleName(std::string_view module_path);

// The value of the last "key=value" argument, if any ("minlen" -> "14").
std::optional<std::string> PamArgValue(const PamLine& line, std::string_view key);
// Whether a bare flag argument ("nullok") is present.
bool PamHasFlag(const PamLine& line, std::string_view flag);

// One module of a resolved stack, with the file it was written in.
struct PamStackEntry {
  PamLine line;
  std::string file;  // absolute path inside the view
};

struct PamStack {
  std::vector<PamStackEntry> entries;  // in execution order
  std::vector<std::string> warnings;   // unreadable includes, include loops, ...
};

// Resolves the `type` stack of the PAM file at `path` (absolute, e.g. /etc/pam.d/common-auth).
// Errors reading `path` itself are returned; problems in included files become warnings.
Result<PamStack> ResolvePamStack(const SystemView& view, const std::string& path,
                                 std::string_view type);

}  // namespace vigil::collectors::linux_os

// TMOUT, bash's idle timeout for interactive shells, as the system-wide startup files set it.
//
// Pure parser plus a fold over files in reading order: the statements that touch TMOUT
// (assignments, `export`, `readonly`, `declare -r`/`typeset -r`, `unset`) are extracted line by
// line, ignoring comments, and applied as bash would: the last assignment wins, except that once
// TMOUT is readonly every later assignment or unset fails (bash prints "readonly variable") and
// the value is frozen. Statements inside `if`/`case` are treated as unconditional; that is
// reported as a warning because the branch may not run. No I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct ShellTimeoutStatement {
  enum class Kind { kAssign, kReadonly, kUnset };
  Kind kind = Kind::kAssign;
  // For kAssign (also `readonly TMOUT=600`, which is kAssign with `readonly` set): the seconds,
  // or nullopt when the text is not a plain number (bash then never times out).
  std::optional<int64_t> seconds;
  bool readonly = false;     // the statement also makes TMOUT readonly
  bool conditional = false;  // inside an if/case/loop or after && / ||
  std::string raw;           // the line as written, trimmed
  int line = 0;              // 1-based
};

// Extracts the statements touching TMOUT from one shell file.
std::vector<ShellTimeoutStatement> ParseShellTimeout(std::string_view text);

struct ShellTimeoutState {
  bool set = false;  // TMOUT has a value
  int64_t seconds = 0;
  std::string source;  // file and line of the assignment in effect
  int line = 0;
  std::string raw;
  bool readonly = false;
  std::string readonly_source;
  int readonly_line = 0;
  std::string readonly_raw;
  std::vector<std::string> warnings;
};

// Applies one file's statements (in order) to `state`.
void ApplyShellTimeout(const std::string& source,
                       const std::vector<ShellTimeoutStatement>& statements,
                       ShellTimeoutState* state);

}  // namespace vigil::collectors::linux_os

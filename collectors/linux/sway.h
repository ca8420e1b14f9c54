// sway's idle locking as swayidle would run it. Pure parsers; no I/O.
//
// sway itself never locks: a config line `exec swayidle -w timeout 300 'swaylock -f' before-sleep
// 'swaylock -f'` starts swayidle, which runs swaylock after N seconds of idle and before the
// machine sleeps. ParseSwayConfig finds those exec/exec_always lines (joining backslash
// continuations and substituting `set $name value` variables), and the `include` lines to follow.
// swayidle also always loads its config file (-C PATH, else the first of
// ~/.config/swayidle/config, ~/.swayidle/config, /etc/swayidle/config: one command per line),
// parsed by ParseSwayidleConfig; an unknown keyword there makes swayidle exit, so nothing locks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct SwayIdleEvent {
  int64_t seconds = 0;
  std::string source;  // the file the command is in
  int line = 0;
  std::string raw;
};

struct SwayIdle {
  bool swayidle_found = false;  // an exec line starts swayidle
  int swayidle_line = 0;
  std::string swayidle_raw;
  bool no_commands = false;  // swayidle started without commands (all come from its config)
  std::string config_file;   // its -C path, "" for the default search
  // Set when the swayidle config file has an error (swayidle then exits): "line N: ...".
  std::string config_error;
  bool wait = false;  // -w: before-sleep commands finish before sleeping
  // Smallest timeout whose command runs swaylock (directly or through `loginctl lock-session`
  // with a `lock 'swaylock'` handler).
  std::optional<SwayIdleEvent> lock_timeout;
  // Smallest timeout whose command suspends or hibernates the machine.
  std::optional<SwayIdleEvent> suspend_timeout;
  // before-sleep runs swaylock.
  std::optional<SwayIdleEvent> before_sleep_lock;
  // swaylock --grace N (swaylock-effects): seconds during which any input unlocks.
  std::optional<SwayIdleEvent> grace;
};

// Parses one sway config file. `vars` carries `set $name value` across included files.
// `includes` receives the argument of each include line (unexpanded, in order).
void ParseSwayConfig(std::string_view text, const std::string& source,
                     std::map<std::string, std::string>* vars, std::vector<std::string>* includes,
                     SwayIdle* out);

// Parses a swayidle config file (commands, one per line; '#' comments) into `out`.
void ParseSwayidleConfig(std::string_view text, const std::string& source, SwayIdle* out);

}  // namespace vigil::collectors::linux_os

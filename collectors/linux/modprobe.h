// Kernel-module configuration and state, parsed as pure functions: modprobe.d files (kmod's
// syntax), the kernel command line, /proc/modules and modules.builtin.
//
// kmod rules followed (libkmod-config.c): a trailing '\' joins the next line; a line whose
// first character is '#' is a comment; commands are split on blanks; module names have '-'
// turned into '_' outside "[...]" (usb-storage == usb_storage); "install MODULE COMMAND..." keeps
// the rest of the line as the shell command; unknown commands are ignored with a warning.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

// kmod's underscores(): '-' becomes '_' except inside "[...]" (glob character classes).
std::string NormalizeModuleName(std::string_view name);

struct ModprobeRule {
  std::string command;   // "blacklist", "install", "alias", "remove", "options", "softdep"
  std::string module;    // normalized; for alias the alias name, for install a glob pattern
  std::string argument;  // install/remove: the shell command; alias: target module; else rest
  int line_no = 0;
  std::string text;  // the logical line as written (continuations joined)
};

struct ModprobeConfig {
  std::vector<ModprobeRule> rules;    // in file order
  std::vector<std::string> warnings;  // "line N: ..." for lines kmod ignores
};

ModprobeConfig ParseModprobeConfig(std::string_view text);

// Whether an install/remove pattern (fnmatch, as kmod uses for install commands) names `module`.
bool ModulePatternMatches(std::string_view pattern, std::string_view module);

// Whether an install command could still load a module: it runs modprobe or insmod. Any other
// command (/bin/false, /bin/true, echo ...) replaces loading entirely. Deliberately conservative:
// "modprobe --ignore-install usb_storage" and "insmod x.ko" both count as loading. A shell comment
// ("/bin/true # modprobe disabled") is not part of what runs.
bool InstallCommandMayLoad(std::string_view command);

struct CmdlineParam {
  std::string name;   // "modprobe.blacklist", "module_blacklist", "usb-storage.quirks"
  std::string value;  // without surrounding quotes
  std::string text;   // the token as written
};

// Splits /proc/cmdline as the kernel does: blanks separate, double quotes group.
std::vector<CmdlineParam> ParseKernelCmdline(std::string_view text);

// Module names listed in /proc/modules (first field of each line).
std::set<std::string> ParseProcModules(std::string_view text);

// Module names in modules.builtin ("kernel/drivers/usb/storage/usb-storage.ko" -> usb_storage).
std::set<std::string> ParseModulesBuiltin(std::string_view text);

}  // namespace vigil::collectors::linux_os

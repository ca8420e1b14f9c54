// The kernel build configuration (/boot/config-<release>, Kconfig's .config format), parsed as a
// pure function. Used to tell whether a driver is built in ("y"), a loadable module ("m") or not
// in the kernel at all ("n": the symbol is absent or written "# CONFIG_X is not set").
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace vigil::collectors::linux_os {

struct KernelConfigValue {
  std::string value;  // "y", "m", "n", or the text after '=' (quotes kept) for other symbols
  int line = 0;       // 1-based
  std::string raw;    // the line as written
};

// Symbol name ("CONFIG_USB_STORAGE") -> value. A later line for the same symbol wins, as Kconfig's
// conf_read does. Lines that are neither "CONFIG_X=..." nor "# CONFIG_X is not set" are ignored.
std::map<std::string, KernelConfigValue> ParseKernelConfig(std::string_view text);

}  // namespace vigil::collectors::linux_os

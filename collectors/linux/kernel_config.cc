#include "collectors/linux/kernel_config.h"

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsSymbol(std::string_view s) {
  if (!StartsWith(s, "CONFIG_") || s.size() == 7) return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::map<std::string, KernelConfigValue> ParseKernelConfig(std::string_view text) {
  std::map<std::string, KernelConfigValue> out;
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    std::string_view t = Trim(line);
    if (StartsWith(t, "#")) {
      // conf_read's "# CONFIG_FOO is not set" form: an explicit "n".
      std::string_view rest = Trim(t.substr(1));
      constexpr std::string_view kNotSet = " is not set";
      if (!EndsWith(rest, kNotSet)) continue;
      std::string_view sym = rest.substr(0, rest.size() - kNotSet.size());
      if (!IsSymbol(sym)) continue;
      out[std::string(sym)] = {"n", line_no, std::string(t)};
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view sym = t.substr(0, eq);
    if (!IsSymbol(sym)) continue;
    out[std::string(sym)] = {std::string(t.substr(eq + 1)), line_no, std::string(t)};
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

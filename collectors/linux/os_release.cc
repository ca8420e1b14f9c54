#include "collectors/linux/os_release.h"

#include "collectors/text.h"

namespace vigil::collectors::linux_os {

std::map<std::string, std::string> ParseOsRelease(std::string_view text) {
  std::map<std::string, std::string> out;
  for (std::string_view line : SplitLines(text)) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string key(line.substr(0, eq));
    std::string_view raw = line.substr(eq + 1);
    std::string value;
    char quote = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (quote == 0 && (c == '"' || c == '\'')) {
        quote = c;
        continue;
      }
      if (quote != 0 && c == quote) {
        quote = 0;
        continue;
      }
      if (c == '\\' && quote != '\'' && i + 1 < raw.size()) {
        value.push_back(raw[++i]);
        continue;
      }
      if (quote == 0 && (c == ' ' || c == '\t' || c == '\r')) break;
      value.push_back(c);
    }
    out[key] = value;
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

#include "collectors/linux/shadow.h"

#include <charconv>
#include <set>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {

std::vector<ShadowEntry> ParseShadow(std::string_view text) {
  std::vector<ShadowEntry> out;
  std::set<std::string, std::less<>> seen;
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
    std::vector<std::string_view> f;
    size_t start = 0;
    for (;;) {
      size_t colon = line.find(':', start);
      f.push_back(line.substr(start, colon == std::string_view::npos ? colon : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (f.size() < 8 || f[0].empty()) continue;
    if (seen.count(f[0]) != 0) continue;
    seen.insert(std::string(f[0]));
    ShadowEntry e;
    e.name = std::string(f[0]);
    e.line_no = line_no;
    e.empty_password = f[1].empty();
    e.locked = !f[1].empty() && (f[1][0] == '!' || f[1][0] == '*');
    e.max_days_raw = std::string(f[4]);
    if (f[4].empty()) {
      e.max_days = -1;
    } else {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(f[4].data(), f[4].data() + f[4].size(), v);
      if (ec == std::errc() && p == f[4].data() + f[4].size()) e.max_days = v;
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

#include "collectors/linux/shadow.h"

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
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

std::map<std::string, LoginDefsValue> ParseLoginDefsLines(std::string_view text) {
  std::map<std::string, LoginDefsValue> out;
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r' ||
                             line.back() == '\n')) {
      line.remove_suffix(1);
    }
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string_view::npos || line[b] == '#') continue;
    std::string_view rest = line.substr(b);
    size_t e = rest.find_first_of(" \t");
    if (e == std::string_view::npos) continue;  // a key without a value
    std::string_view key = rest.substr(0, e);
    std::string_view value = rest.substr(e);
    size_t v = value.find_first_not_of(" \"\t");
    value = v == std::string_view::npos ? std::string_view() : value.substr(v);
    if (size_t q = value.find('"'); q != std::string_view::npos) value = value.substr(0, q);
    out[std::string(key)] = {std::string(value), line_no, std::string(rest)};
  }
  return out;
}

std::optional<int64_t> LoginDefsNumber(std::string_view value) {
  if (value.empty()) return std::nullopt;
  std::string s(value);
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 0);
  if (errno != 0 || end == s.c_str() || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(v);
}

}  // namespace vigil::collectors::linux_os

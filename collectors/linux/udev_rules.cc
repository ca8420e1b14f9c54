#include "collectors/linux/udev_rules.h"

#include <fnmatch.h>

#include <vector>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// udev matches values as shell globs with '|' separating alternatives.
bool GlobMatches(std::string_view pattern, std::string_view value) {
  size_t start = 0;
  for (;;) {
    size_t bar = pattern.find('|', start);
    std::string alt(pattern.substr(start, bar == std::string_view::npos ? bar : bar - start));
    if (::fnmatch(alt.c_str(), std::string(value).c_str(), 0) == 0) return true;
    if (bar == std::string_view::npos) return false;
    start = bar + 1;
  }
}

// Whether a match key (== or !=) accepts `value`.
bool Accepts(const UdevKey& k, std::string_view value) {
  const bool m = GlobMatches(k.value, value);
  return k.op == "==" ? m : !m;
}

bool IsMatch(const UdevKey& k) { return k.op == "==" || k.op == "!="; }

// A command whose program is blockdev (any directory) with its read-only switch: --setro, or -r
// as a word of its own. Anything wrapped in a shell is not recognised (judged as no rule).
bool RunsBlockdevSetro(std::string_view cmd) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < cmd.size()) {
    while (i < cmd.size() && IsBlank(cmd[i])) ++i;
    size_t b = i;
    while (i < cmd.size() && !IsBlank(cmd[i])) ++i;
    if (i > b) words.push_back(cmd.substr(b, i - b));
  }
  if (words.empty()) return false;
  std::string_view program = words[0];
  if (size_t slash = program.rfind('/'); slash != std::string_view::npos) {
    program.remove_prefix(slash + 1);
  }
  if (program != "blockdev") return false;
  for (size_t w = 1; w < words.size(); ++w) {
    if (words[w] == "--setro" || words[w] == "-r") return true;
  }
  return false;
}

}  // namespace

UdevRules ParseUdevRules(std::string_view text) {
  UdevRules out;
  std::vector<std::string_view> lines = SplitLines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    const int first = static_cast<int>(n) + 1;
    std::string line;
    for (;;) {
      std::string_view phys = lines[n];
      while (!phys.empty() && IsBlank(phys.back())) phys.remove_suffix(1);
      if (!phys.empty() && phys.back() == '\\' && n + 1 < lines.size()) {
        line.append(phys.substr(0, phys.size() - 1));
        ++n;
        continue;
      }
      line.append(phys);
      break;
    }
    std::string_view s = line;
    while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
    if (s.empty() || s.front() == '#') continue;
    UdevRule rule;
    rule.line = first;
    rule.text = std::string(s);
    bool bad = false;
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && (IsBlank(s[i]) || s[i] == ',')) ++i;
      if (i >= s.size()) break;
      UdevKey k;
      size_t b = i;
      while (i < s.size() && s[i] != '{' && s[i] != '=' && s[i] != '!' && s[i] != '+' &&
             s[i] != '-' && s[i] != ':' && !IsBlank(s[i])) {
        ++i;
      }
      k.key = std::string(s.substr(b, i - b));
      if (i < s.size() && s[i] == '{') {
        size_t close = s.find('}', i);
        if (close == std::string_view::npos) {
          bad = true;
          break;
        }
        k.attr = std::string(s.substr(i + 1, close - i - 1));
        i = close + 1;
      }
      while (i < s.size() && IsBlank(s[i])) ++i;
      for (std::string_view op : {"==", "!=", "+=", "-=", ":=", "="}) {
        if (s.substr(i, op.size()) == op) {
          k.op = std::string(op);
          i += op.size();
          break;
        }
      }
      while (i < s.size() && IsBlank(s[i])) ++i;
      if (k.key.empty() || k.op.empty() || i >= s.size() || s[i] != '"') {
        bad = true;
        break;
      }
      size_t close = i + 1;
      while (close < s.size() && !(s[close] == '"' && s[close - 1] != '\\')) ++close;
      if (close >= s.size()) {
        bad = true;
        break;
      }
      k.value = std::string(s.substr(i + 1, close - i - 1));
      i = close + 1;
      rule.keys.push_back(std::move(k));
    }
    if (bad || rule.keys.empty()) {
      out.warnings.push_back("line " + std::to_string(first) + ": cannot parse '" + rule.text +
                             "' (udev ignores it)");
      continue;
    }
    out.rules.push_back(std::move(rule));
  }
  return out;
}

std::string UdevReadOnlyMechanism(const UdevRule& rule) {
  std::string mechanism;
  bool usb = false;
  bool all_block = false;
  for (const UdevKey& k : rule.keys) {
    if (IsMatch(k)) {
      if (k.key == "ACTION" && !Accepts(k, "add")) return "";
      if (k.key == "SUBSYSTEM") {
        if (!Accepts(k, "block")) return "";
        if (k.op == "==") all_block = true;
      }
      if (k.key == "SUBSYSTEMS" && k.op == "==" && GlobMatches(k.value, "usb")) usb = true;
      if (k.key == "ENV" && k.attr == "ID_BUS" && k.op == "==" && GlobMatches(k.value, "usb")) {
        usb = true;
      }
      if (k.key == "DRIVERS" && k.op == "==" &&
          (GlobMatches(k.value, "usb-storage") || GlobMatches(k.value, "uas"))) {
        usb = true;
      }
      continue;
    }
    if (k.key == "RUN" && (k.op == "+=" || k.op == "=" || k.op == ":=") &&
        (k.attr.empty() || k.attr == "program") && RunsBlockdevSetro(k.value)) {
      mechanism = "blockdev --setro";
    }
    if (k.key == "ATTR" && k.attr == "ro" && (k.op == "=" || k.op == ":=") && k.value == "1" &&
        mechanism.empty()) {
      mechanism = "ATTR{ro}=1";
    }
  }
  if (mechanism.empty() || !(usb || all_block)) return "";
  return mechanism;
}

}  // namespace vigil::collectors::linux_os

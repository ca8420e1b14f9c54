#include "collectors/linux/pam.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace vigil::collectors::linux_os {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Splits text into logical lines as libpam's _pam_assemble_line does.
struct LogicalLine {
  int line_no;
  std::string text;
};

std::vector<LogicalLine> AssembleLines(std::string_view text) {
  std::vector<LogicalLine> out;
  std::string cur;
  int cur_line = 0;
  bool continuing = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view phys =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    size_t start = 0;
    while (start < phys.size() && IsSpace(phys[start])) ++start;
    phys.remove_prefix(start);
    // Blank and comment-only lines carry nothing; inside a continuation libpam skips them and
    // keeps joining.
    if (phys.empty() || phys.front() == '#') continue;
    if (!continuing) cur_line = line_no;
    size_t hash = phys.find('#');
    if (hash != std::string_view::npos) {
      cur.append(phys.substr(0, hash));
      out.push_back({cur_line, std::move(cur)});
      cur.clear();
      continuing = false;
      continue;
    }
    while (!phys.empty() && IsSpace(phys.back())) phys.remove_suffix(1);
    if (!phys.empty() && phys.back() == '\\') {
      cur.append(phys.substr(0, phys.size() - 1));
      cur.push_back(' ');
      continuing = true;
      continue;
    }
    cur.append(phys);
    out.push_back({cur_line, std::move(cur)});
    cur.clear();
    continuing = false;
  }
  if (continuing && !cur.empty()) out.push_back({cur_line, std::move(cur)});
  return out;
}

// One token as libpam's _pam_StrTok reads it: whitespace-separated, except that "[...]" is a
// single token (up to the first ']' not escaped as "\]"), returned without its brackets.
struct Token {
  std::string value;
  bool bracketed = false;
};

bool NextToken(std::string_view s, size_t* pos, Token* tok) {
  size_t i = *pos;
  while (i < s.size() && IsSpace(s[i])) ++i;
  if (i >= s.size()) {
    *pos = i;
    return false;
  }
  tok->value.clear();
  tok->bracketed = false;
  if (s[i] == '[') {
    tok->bracketed = true;
    ++i;
    while (i < s.size()) {
      if (s[i] == ']') {
        if (!tok->value.empty() && tok->value.back() == '\\') {
          tok->value.back() = ']';
          ++i;
          continue;
        }
        ++i;
        break;
      }
      tok->value.push_back(s[i++]);
    }
  } else {
    while (i < s.size() && !IsSpace(s[i])) tok->value.push_back(s[i++]);
  }
  *pos = i;
  return true;
}

// Include targets are relative to /etc/pam.d (libpam's PAM_CONFIG_D), unless absolute.
std::string IncludePath(const std::string& target) {
  if (!target.empty() && target[0] == '/') return target;
  return "/etc/pam.d/" + target;
}

// libpam stops nesting at a fixed depth; a loop would otherwise recurse forever.
constexpr int kMaxIncludeDepth = 16;

void Resolve(const SystemView& view, const std::string& path, std::string_view type,
             const std::vector<PamLine>& lines, int depth, std::set<std::string>* active,
             PamStack* out) {
  for (const PamLine& l : lines) {
    const bool is_at_include = l.type == "@include";
    const bool is_include =
        !is_at_include && l.type == type && (l.control == "include" || l.control == "substack");
    if (is_at_include || is_include) {
      std::string target = IncludePath(l.module);
      if (depth + 1 > kMaxIncludeDepth || active->count(target) != 0) {
        out->warnings.push_back(path + ":" + std::to_string(l.line_no) + ": include of " + target +
                                " nests too deep or loops; not followed");
        continue;
      }
      auto text = view.ReadFile(target);
      if (!text.ok()) {
        out->warnings.push_back(path + ":" + std::to_string(l.line_no) + ": included file " +
                                text.status().message());
        continue;
      }
      active->insert(target);
      Resolve(view, target, type, ParsePamConfig(*text), depth + 1, active, out);
      active->erase(target);
      continue;
    }
    if (l.type != type) continue;
    out->entries.push_back({l, path});
  }
}

}  // namespace

std::vector<PamLine> ParsePamConfig(std::string_view text) {
  std::vector<PamLine> out;
  for (LogicalLine& ll : AssembleLines(text)) {
    std::string_view s = ll.text;
    size_t pos = 0;
    Token tok;
    if (!NextToken(s, &pos, &tok)) continue;
    PamLine line;
    line.line_no = ll.line_no;
    // The text is kept for provenance, trimmed of surrounding blanks.
    size_t b = s.find_first_not_of(" \t\r\n");
    size_t e = s.find_last_not_of(" \t\r\n");
    line.text = std::string(s.substr(b, e - b + 1));
    if (tok.value == "@include" && !tok.bracketed) {
      Token target;
      if (!NextToken(s, &pos, &target)) continue;
      line.type = "@include";
      line.module = target.value;
      out.push_back(std::move(line));
      continue;
    }
    std::string type = tok.value;
    if (!type.empty() && type[0] == '-') {
      line.silent_if_missing = true;
      type.erase(0, 1);
    }
    line.type = Lower(type);
    Token control;
    Token module;
    if (!NextToken(s, &pos, &control) || !NextToken(s, &pos, &module)) continue;
    line.control = control.bracketed ? "[" + control.value + "]" : Lower(control.value);
    line.module = module.value;
    Token arg;
    while (NextToken(s, &pos, &arg)) line.args.push_back(arg.value);
    out.push_back(std::move(line));
  }
  return out;
}

std::string_view PamModuleName(std::string_view module_path) {
  size_t slash = module_path.rfind('/');
  return slash == std::string_view::npos ? module_path : module_path.substr(slash + 1);
}

std::optional<std::string> PamArgValue(const PamLine& line, std::string_view key) {
  std::optional<std::string> found;
  for (const std::string& a : line.args) {
    if (a.size() > key.size() && a.compare(0, key.size(), key) == 0 && a[key.size()] == '=') {
      found = a.substr(key.size() + 1);
    }
  }
  return found;
}

bool PamHasFlag(const PamLine& line, std::string_view flag) {
  return std::find(line.args.begin(), line.args.end(), flag) != line.args.end();
}

Result<PamStack> ResolvePamStack(const SystemView& view, const std::string& path,
                                 std::string_view type) {
  auto text = view.ReadFile(path);
  if (!text.ok()) return text.status();
  PamStack out;
  std::set<std::string> active = {path};
  Resolve(view, path, type, ParsePamConfig(*text), 0, &active, &out);
  return out;
}

}  // namespace vigil::collectors::linux_os

#include "collectors/linux/modprobe.h"

#include <fnmatch.h>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Splits off the next blank-separated word (strtok_r with "\t ").
std::string_view NextWord(std::string_view* s) {
  size_t b = 0;
  while (b < s->size() && IsBlank((*s)[b])) ++b;
  size_t e = b;
  while (e < s->size() && !IsBlank((*s)[e])) ++e;
  std::string_view w = s->substr(b, e - b);
  s->remove_prefix(e);
  return w;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string NormalizeModuleName(std::string_view name) {
  std::string out(name);
  bool in_class = false;
  for (char& c : out) {
    if (c == '[') in_class = true;
    if (c == ']') in_class = false;
    if (c == '-' && !in_class) c = '_';
  }
  return out;
}

ModprobeConfig ParseModprobeConfig(std::string_view text) {
  ModprobeConfig out;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // freadline_wrapped: a trailing '\' is dropped and the next line appended directly.
    std::string line;
    const int first_line = line_no + 1;
    for (;;) {
      size_t nl = text.find('\n', pos);
      std::string_view phys =
          text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? text.size() : nl + 1;
      ++line_no;
      if (!phys.empty() && phys.back() == '\\' && pos < text.size()) {
        line.append(phys.substr(0, phys.size() - 1));
        continue;
      }
      if (!phys.empty() && phys.back() == '\\') phys.remove_suffix(1);
      line.append(phys);
      break;
    }
    if (line.empty() || line[0] == '#') continue;
    std::string_view rest = line;
    std::string_view cmd = NextWord(&rest);
    if (cmd.empty()) continue;
    ModprobeRule r;
    r.command = std::string(cmd);
    r.line_no = first_line;
    r.text = std::string(TrimBlanks(line));
    std::string_view name = NextWord(&rest);
    auto bad = [&](const char* why) {
      out.warnings.push_back("line " + std::to_string(first_line) + ": " + why + ": '" + r.text +
                             "' (ignored by kmod)");
    };
    if (cmd == "alias") {
      std::string_view target = NextWord(&rest);
      if (name.empty() || target.empty()) {
        bad("alias needs a name and a module");
        continue;
      }
      r.module = NormalizeModuleName(name);
      r.argument = NormalizeModuleName(target);
    } else if (cmd == "blacklist") {
      if (name.empty()) {
        bad("blacklist needs a module");
        continue;
      }
      r.module = NormalizeModuleName(name);
    } else if (cmd == "install" || cmd == "remove") {
      std::string_view command = TrimBlanks(rest);
      if (name.empty() || command.empty()) {
        bad("needs a module and a command");
        continue;
      }
      r.module = NormalizeModuleName(name);
      r.argument = std::string(command);
    } else if (cmd == "options" || cmd == "softdep") {
      if (name.empty()) {
        bad("needs a module");
        continue;
      }
      r.module = NormalizeModuleName(name);
      r.argument = std::string(TrimBlanks(rest));
    } else if (cmd == "include" || cmd == "config") {
      bad("deprecated command");
      continue;
    } else {
      bad("unknown command");
      continue;
    }
    out.rules.push_back(std::move(r));
  }
  return out;
}

bool ModulePatternMatches(std::string_view pattern, std::string_view module) {
  return ::fnmatch(std::string(pattern).c_str(), std::string(module).c_str(), 0) == 0;
}

bool InstallCommandMayLoad(std::string_view command) {
  // kmod hands the command to /bin/sh, where a word starting with '#' begins a comment:
  // "/bin/true # modprobe disabled" never runs modprobe.
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == '#' && (i == 0 || IsBlank(command[i - 1]))) {
      command = command.substr(0, i);
      break;
    }
  }
  return command.find("modprobe") != std::string_view::npos ||
         command.find("insmod") != std::string_view::npos;
}

std::vector<CmdlineParam> ParseKernelCmdline(std::string_view text) {
  std::vector<CmdlineParam> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (IsBlank(text[i]) || text[i] == '\n')) ++i;
    if (i >= text.size()) break;
    size_t start = i;
    bool quoted = false;
    std::string unquoted;
    while (i < text.size() && (quoted || !(IsBlank(text[i]) || text[i] == '\n'))) {
      if (text[i] == '"') {
        quoted = !quoted;
      } else {
        unquoted.push_back(text[i]);
      }
      ++i;
    }
    CmdlineParam p;
    p.text = std::string(text.substr(start, i - start));
    size_t eq = unquoted.find('=');
    p.name = unquoted.substr(0, eq);
    if (eq != std::string::npos) p.value = unquoted.substr(eq + 1);
    out.push_back(std::move(p));
  }
  return out;
}

std::set<std::string> ParseProcModules(std::string_view text) {
  std::set<std::string> out;
  for (std::string_view line : SplitLines(text)) {
    std::string_view name = NextWord(&line);
    if (!name.empty()) out.insert(NormalizeModuleName(name));
  }
  return out;
}

std::set<std::string> ParseModulesBuiltin(std::string_view text) {
  std::set<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = TrimBlanks(
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    size_t slash = line.rfind('/');
    std::string_view base = slash == std::string_view::npos ? line : line.substr(slash + 1);
    if (size_t dot = base.find(".ko"); dot != std::string_view::npos) base = base.substr(0, dot);
    if (!base.empty()) out.insert(NormalizeModuleName(base));
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

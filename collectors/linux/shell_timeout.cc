#include "collectors/linux/shell_timeout.h"

#include <charconv>
#include <utility>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

constexpr std::string_view kVar = "TMOUT";

struct Command {
  std::vector<std::string> words;
  bool after_logic = false;  // follows && or ||: runs only if the previous command did/didn't
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Splits one line into simple commands: words with quotes removed, split at ; & | && ||.
// A '#' starting a word begins a comment. Good enough for startup files; anything cleverer
// (substitutions, here-documents) leaves words that simply do not match TMOUT statements.
std::vector<Command> SplitCommands(std::string_view line) {
  std::vector<Command> out(1);
  std::string word;
  bool in_word = false;
  auto end_word = [&] {
    if (in_word) out.back().words.push_back(std::move(word));
    word.clear();
    in_word = false;
  };
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (IsSpace(c)) {
      end_word();
    } else if (c == '#' && !in_word) {
      break;
    } else if (c == ';' || c == '&' || c == '|') {
      end_word();
      bool logic = i + 1 < line.size() && line[i + 1] == c && c != ';';
      if (logic) ++i;
      out.push_back({});
      out.back().after_logic = logic;
    } else if (c == '\'') {
      in_word = true;
      size_t end = line.find('\'', i + 1);
      if (end == std::string_view::npos) end = line.size();
      word.append(line.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      in_word = true;
      size_t j = i + 1;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) ++j;
        word.push_back(line[j]);
      }
      i = j;
    } else if (c == '\\' && i + 1 < line.size()) {
      in_word = true;
      word.push_back(line[++i]);
    } else {
      in_word = true;
      word.push_back(c);
    }
  }
  end_word();
  return out;
}

std::optional<int64_t> ParseSeconds(std::string_view v) {
  // bash accepts surrounding whitespace and a sign in TMOUT (legal_number); keep it to digits
  // with an optional sign, which is what startup files use.
  while (!v.empty() && IsSpace(v.front())) v.remove_prefix(1);
  while (!v.empty() && IsSpace(v.back())) v.remove_suffix(1);
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}

bool IsBlockOpen(std::string_view w) {
  return w == "if" || w == "case" || w == "while" || w == "until" || w == "for" || w == "select";
}
bool IsBlockClose(std::string_view w) { return w == "fi" || w == "esac" || w == "done"; }
bool IsKeywordPrefix(std::string_view w) {
  return w == "then" || w == "do" || w == "else" || w == "elif" || w == "{" || w == "(" || w == "!";
}

}  // namespace

std::vector<ShellTimeoutStatement> ParseShellTimeout(std::string_view text) {
  std::vector<ShellTimeoutStatement> out;
  int depth = 0;  // open if/case/loop blocks: statements inside may not run
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    std::string_view trimmed = line;
    while (!trimmed.empty() && IsSpace(trimmed.front())) trimmed.remove_prefix(1);
    while (!trimmed.empty() && IsSpace(trimmed.back())) trimmed.remove_suffix(1);
    if (trimmed.empty() || trimmed.front() == '#') continue;
    for (Command& cmd : SplitCommands(trimmed)) {
      auto& w = cmd.words;
      size_t i = 0;
      while (i < w.size() && (IsKeywordPrefix(w[i]) || IsBlockOpen(w[i]) || IsBlockClose(w[i]))) {
        if (IsBlockOpen(w[i])) ++depth;
        if (IsBlockClose(w[i]) && depth > 0) --depth;
        ++i;
      }
      // A block may also close at the end of a command ("... ;; esac" is rare; "fi" alone is
      // handled above).
      if (i >= w.size()) continue;
      auto emit = [&](ShellTimeoutStatement::Kind kind, std::optional<int64_t> seconds,
                      bool readonly) {
        ShellTimeoutStatement s;
        s.kind = kind;
        s.seconds = seconds;
        s.readonly = readonly;
        s.conditional = depth > 0 || cmd.after_logic;
        s.raw = std::string(trimmed);
        s.line = line_no;
        out.push_back(std::move(s));
      };
      // An argument "TMOUT" or "TMOUT=V"; returns whether it named TMOUT and the value if any.
      auto arg = [](const std::string& a) -> std::pair<bool, std::optional<std::string>> {
        if (a == kVar) return {true, std::nullopt};
        if (StartsWith(a, "TMOUT=")) return {true, a.substr(kVar.size() + 1)};
        return {false, std::nullopt};
      };
      const std::string& head = w[i];
      if (StartsWith(head, "TMOUT=")) {
        // "TMOUT=600 cmd" sets it only for cmd's environment; alone it is an assignment.
        if (i + 1 == w.size()) {
          emit(ShellTimeoutStatement::Kind::kAssign, ParseSeconds(head.substr(6)), false);
        }
        continue;
      }
      if (head == "export" || head == "readonly" || head == "declare" || head == "typeset") {
        bool readonly = head == "readonly";
        bool unexport_only = false;
        for (size_t j = i + 1; j < w.size(); ++j) {
          const std::string& a = w[j];
          if (a.size() > 1 && a[0] == '-') {
            if (head != "export" && a.find('r') != std::string::npos) readonly = true;
            if (head == "export" && a.find('n') != std::string::npos) unexport_only = true;
            continue;
          }
          auto [named, value] = arg(a);
          if (!named) continue;
          if (value) {
            emit(ShellTimeoutStatement::Kind::kAssign, ParseSeconds(*value), readonly);
          } else if (readonly) {
            emit(ShellTimeoutStatement::Kind::kReadonly, std::nullopt, true);
          }
          (void)unexport_only;  // export/-n change the environment only, never the value
        }
        continue;
      }
      if (head == "unset") {
        for (size_t j = i + 1; j < w.size(); ++j) {
          if (w[j] == "-f") break;  // unsets functions, not variables
          if (w[j] == kVar) emit(ShellTimeoutStatement::Kind::kUnset, std::nullopt, false);
        }
      }
    }
  }
  return out;
}

void ApplyShellTimeout(const std::string& source,
                       const std::vector<ShellTimeoutStatement>& statements,
                       ShellTimeoutState* state) {
  for (const ShellTimeoutStatement& s : statements) {
    const std::string where = source + ":" + std::to_string(s.line);
    if (s.conditional) {
      state->warnings.push_back(where + ": '" + s.raw +
                                "' is conditional; counted as if it always runs");
    }
    if (state->readonly && s.kind != ShellTimeoutStatement::Kind::kReadonly) {
      state->warnings.push_back(
          where + ": '" + s.raw + "' has no effect: TMOUT is readonly since " +
          state->readonly_source + ":" + std::to_string(state->readonly_line));
      continue;
    }
    switch (s.kind) {
      case ShellTimeoutStatement::Kind::kAssign:
        state->set = s.seconds.has_value() && *s.seconds > 0;
        state->seconds = state->set ? *s.seconds : 0;
        if (!s.seconds) {
          state->warnings.push_back(where + ": '" + s.raw +
                                    "' is not a number of seconds; bash does not time out");
        }
        state->source = source;
        state->line = s.line;
        state->raw = s.raw;
        break;
      case ShellTimeoutStatement::Kind::kUnset:
        state->set = false;
        state->seconds = 0;
        state->source = source;
        state->line = s.line;
        state->raw = s.raw;
        break;
      case ShellTimeoutStatement::Kind::kReadonly:
        break;
    }
    if (s.readonly && !state->readonly) {
      state->readonly = true;
      state->readonly_source = source;
      state->readonly_line = s.line;
      state->readonly_raw = s.raw;
    }
  }
}

}  // namespace vigil::collectors::linux_os

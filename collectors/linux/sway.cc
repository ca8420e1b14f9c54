#include "collectors/linux/sway.h"

#include <charconv>
#include <utility>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Shell words (sway hands exec arguments to sh -c): quotes removed, backslash escapes kept
// literal. Stops at an unquoted '#' that starts a word.
std::vector<std::string> Words(std::string_view s) {
  std::vector<std::string> out;
  std::string w;
  bool in = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (IsSpace(c)) {
      if (in) out.push_back(std::move(w));
      w.clear();
      in = false;
    } else if (c == '#' && !in) {
      break;
    } else if (c == '\'' || c == '"') {
      in = true;
      size_t end = s.find(c, i + 1);
      if (end == std::string_view::npos) end = s.size();
      w.append(s.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '\\' && i + 1 < s.size()) {
      in = true;
      w.push_back(s[++i]);
    } else {
      in = true;
      w.push_back(c);
    }
  }
  if (in) out.push_back(std::move(w));
  return out;
}

std::optional<int64_t> Number(std::string_view v) {
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}

bool RunsSwaylock(std::string_view cmd) { return cmd.find("swaylock") != std::string_view::npos; }
bool LocksSession(std::string_view cmd) {
  return cmd.find("loginctl lock-session") != std::string_view::npos;
}
bool Suspends(std::string_view cmd) {
  for (std::string_view verb :
       {"systemctl suspend", "systemctl hibernate", "systemctl hybrid-sleep", "loginctl suspend",
        "loginctl hibernate", "zzz"}) {
    if (cmd.find(verb) != std::string_view::npos) return true;
  }
  return false;
}

void Keep(std::optional<SwayIdleEvent>* slot, SwayIdleEvent e) {
  if (!*slot || e.seconds < (*slot)->seconds) *slot = std::move(e);
}

// swaylock --grace N / --grace=N (swaylock-effects).
std::optional<int64_t> Grace(std::string_view cmd) {
  auto w = Words(cmd);
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == "--grace" && i + 1 < w.size()) return Number(w[i + 1]);
    if (StartsWith(w[i], "--grace=")) return Number(std::string_view(w[i]).substr(8));
  }
  return std::nullopt;
}

// Interprets swayidle's command words (after the options).
void ApplyCommands(const std::vector<std::string>& w, size_t i, const std::string& source, int line,
                   const std::string& raw, SwayIdle* out) {
  std::optional<int64_t> lock_session_timeout;
  bool lock_handler = false;
  while (i < w.size()) {
    const std::string& cmd = w[i];
    if (cmd == "timeout" && i + 2 < w.size()) {
      auto n = Number(w[i + 1]);
      const std::string& run = w[i + 2];
      if (n && *n > 0) {
        if (RunsSwaylock(run)) Keep(&out->lock_timeout, {*n, source, line, raw});
        if (Suspends(run)) Keep(&out->suspend_timeout, {*n, source, line, raw});
        if (LocksSession(run) && (!lock_session_timeout || *n < *lock_session_timeout)) {
          lock_session_timeout = n;
        }
        if (RunsSwaylock(run)) {
          if (auto g = Grace(run)) out->grace = SwayIdleEvent{*g, source, line, raw};
        }
      }
      i += 3;
      if (i + 1 < w.size() && w[i] == "resume") i += 2;
    } else if ((cmd == "before-sleep" || cmd == "lock" || cmd == "after-resume" ||
                cmd == "unlock" || cmd == "idlehint") &&
               i + 1 < w.size()) {
      if (cmd == "before-sleep" && RunsSwaylock(w[i + 1])) {
        out->before_sleep_lock = SwayIdleEvent{0, source, line, raw};
      }
      if (cmd == "lock" && RunsSwaylock(w[i + 1])) lock_handler = true;
      i += 2;
    } else {
      ++i;  // unknown word: swayidle would refuse to start; do not credit anything for it
    }
  }
  // `timeout N 'loginctl lock-session'` locks only through a `lock 'swaylock'` handler.
  if (lock_session_timeout && lock_handler) {
    Keep(&out->lock_timeout, {*lock_session_timeout, source, line, raw});
  }
}

// One swayidle invocation: `swayidle [options] [commands]`.
void ApplySwayidle(const std::vector<std::string>& w, size_t i, const std::string& source, int line,
                   const std::string& raw, SwayIdle* out) {
  out->swayidle_found = true;
  out->swayidle_line = line;
  out->swayidle_raw = raw;
  ++i;  // "swayidle"
  while (i < w.size() && StartsWith(w[i], "-")) {
    if (w[i] == "-w") out->wait = true;
    if ((w[i] == "-C" || w[i] == "-S") && i + 1 < w.size()) {
      if (w[i] == "-C") out->config_file = w[i + 1];
      ++i;
    }
    ++i;
  }
  if (i >= w.size()) {
    out->no_commands = true;
    return;
  }
  ApplyCommands(w, i, source, line, raw, out);
}

// Expansion is capped: `set $a $a$a` repeated would double the text on every line.
constexpr size_t kMaxExpandedBytes = 8 * 1024;  // sway lines are far shorter

std::string Substitute(std::string_view s, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() <= kMaxExpandedBytes;) {
    if (s[i] == '$') {
      // The longest variable name that matches, as sway does.
      size_t best = 0;
      const std::string* value = nullptr;
      for (const auto& [name, v] : vars) {
        if (name.size() > best && s.substr(i, name.size()) == name) {
          best = name.size();
          value = &v;
        }
      }
      if (value != nullptr) {
        out += *value;
        i += best;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  if (out.size() > kMaxExpandedBytes) out.resize(kMaxExpandedBytes);
  return out;
}

}  // namespace

void ParseSwayConfig(std::string_view text, const std::string& source,
                     std::map<std::string, std::string>* vars, std::vector<std::string>* includes,
                     SwayIdle* out) {
  auto lines = SplitLines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    const int line_no = static_cast<int>(n) + 1;
    std::string joined(Trim(lines[n]));
    // A trailing backslash continues the line.
    while (!joined.empty() && joined.back() == '\\' && n + 1 < lines.size()) {
      joined.pop_back();
      joined += " ";
      joined += Trim(lines[++n]);
    }
    if (joined.empty() || joined.front() == '#') continue;
    std::string_view body = joined;
    auto first = Words(body);
    if (first.empty()) continue;
    if (first[0] == "set" && first.size() >= 3 && StartsWith(first[1], "$")) {
      // set $name value...: the rest of the line, variables in it already substituted.
      size_t pos = body.find(first[1]) + first[1].size();
      (*vars)[first[1]] = std::string(Trim(Substitute(body.substr(pos), *vars)));
      continue;
    }
    const std::string line = Substitute(body, *vars);
    auto w = Words(line);
    if (w.empty()) continue;
    if (w[0] == "include" && w.size() >= 2) {
      includes->push_back(
          std::string(Trim(std::string_view(line).substr(line.find("include") + 7))));
      continue;
    }
    if (w[0] != "exec" && w[0] != "exec_always") continue;
    size_t i = 1;
    while (i < w.size() && StartsWith(w[i], "--")) ++i;  // --no-startup-id
    // `exec swayidle ...` or `exec /usr/bin/swayidle ...`.
    if (i < w.size() && (w[i] == "swayidle" || EndsWith(w[i], "/swayidle"))) {
      ApplySwayidle(w, i, source, line_no, joined, out);
    }
  }
}

void ParseSwayidleConfig(std::string_view text, const std::string& source, SwayIdle* out) {
  int line_no = 0;
  for (std::string_view raw : SplitLines(text)) {
    ++line_no;
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') continue;
    auto w = Words(line);
    if (w.empty()) continue;
    static constexpr std::string_view kKeywords[] = {"timeout", "before-sleep", "after-resume",
                                                     "lock",    "unlock",       "idlehint"};
    bool known = false;
    for (std::string_view k : kKeywords) known = known || w[0] == k;
    if (!known) {
      // swayidle's load_config rejects the file and the program exits.
      if (out->config_error.empty()) {
        out->config_error = "line " + std::to_string(line_no) + ": unexpected keyword '" + w[0] +
                            "' (swayidle exits)";
      }
      continue;
    }
    ApplyCommands(w, 0, source, line_no, std::string(line), out);
  }
}

}  // namespace vigil::collectors::linux_os

#include "collectors/linux/usbguard.h"

#include <algorithm>
#include <cctype>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool IsHex(std::string_view s, size_t n) {
  return s.size() == n &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

// "vvvv:pppp" with "*" allowed for the product, or "*:*".
bool ValidDeviceId(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view v = s.substr(0, colon);
  std::string_view p = s.substr(colon + 1);
  if (v == "*") return p == "*";
  return IsHex(v, 4) && (p == "*" || IsHex(p, 4));
}

// "cc:ss:pp", "cc:ss:*", "cc:*:*" (an asterisk subclass needs an asterisk protocol).
bool ValidInterface(std::string_view s) {
  std::vector<std::string_view> f;
  size_t start = 0;
  for (;;) {
    size_t colon = s.find(':', start);
    f.push_back(s.substr(start, colon == std::string_view::npos ? colon : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (f.size() != 3) return false;
  auto field = [](std::string_view x) { return x == "*" || IsHex(x, 2); };
  if (!field(f[0]) || !field(f[1]) || !field(f[2])) return false;
  if (f[0] == "*" && (f[1] != "*" || f[2] != "*")) return false;
  if (f[1] == "*" && f[2] != "*") return false;
  return true;
}

bool IsOperator(std::string_view s) {
  return s == "all-of" || s == "one-of" || s == "none-of" || s == "equals" ||
         s == "equals-ordered" || s == "match-all";
}

struct Token {
  std::string text;
  bool quoted = false;
  bool brace = false;  // "{" or "}"
};

// Splits a rule into tokens: blanks separate; "{" and "}" stand alone; a double-quoted string
// (with \" and \\ escapes) is one token; a word keeps balanced parentheses with their contents
// (conditions like allowed-matches(with-interface one-of { 03:*:* })). Returns false with `why`
// on unterminated quotes or parentheses.
bool Tokenize(std::string_view s, std::vector<Token>* out, std::string* why) {
  size_t i = 0;
  while (i < s.size()) {
    if (IsBlank(s[i])) {
      ++i;
      continue;
    }
    if (s[i] == '{' || s[i] == '}') {
      out->push_back({std::string(1, s[i]), false, true});
      ++i;
      continue;
    }
    if (s[i] == '"') {
      std::string v;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          v.push_back(s[i + 1]);
          i += 2;
          continue;
        }
        if (s[i] == '"') {
          closed = true;
          ++i;
          break;
        }
        v.push_back(s[i++]);
      }
      if (!closed) {
        *why = "unterminated quoted string";
        return false;
      }
      out->push_back({std::move(v), true, false});
      continue;
    }
    size_t b = i;
    int depth = 0;
    bool in_quote = false;
    while (i < s.size()) {
      char c = s[i];
      if (in_quote) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_quote = false;
      } else if (c == '"' && depth > 0) {
        in_quote = true;
      } else if (c == '(') {
        ++depth;
      } else if (c == ')') {
        if (depth == 0) {
          *why = "unbalanced ')'";
          return false;
        }
        --depth;
      } else if (depth == 0 && (IsBlank(c) || c == '{' || c == '}' || c == '"')) {
        break;
      }
      ++i;
    }
    if (depth != 0 || in_quote) {
      *why = "unterminated '('";
      return false;
    }
    out->push_back({std::string(s.substr(b, std::min(i, s.size()) - b)), false, false});
  }
  return true;
}

// Attributes that only narrow a match. "label" is parsed but matches nothing, so not kept.
constexpr std::string_view kNarrowing[] = {"hash",   "parent-hash", "name",
                                           "serial", "via-port",    "with-connect-type"};

}  // namespace

std::vector<UsbGuardSetting> ParseUsbGuardDaemonConf(std::string_view text) {
  std::vector<UsbGuardSetting> out;
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    std::string_view t = Trim(line);
    if (t.empty() || t.front() == '#') continue;
    size_t eq = t.find('=');
    if (eq == std::string_view::npos) continue;
    out.push_back({std::string(Trim(t.substr(0, eq))), std::string(Trim(t.substr(eq + 1))), line_no,
                   std::string(t)});
  }
  return out;
}

UsbGuardRules ParseUsbGuardRules(std::string_view text) {
  UsbGuardRules out;
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    std::string_view t = Trim(line);
    if (t.empty() || t.front() == '#') continue;
    auto error = [&](const std::string& why) {
      out.errors.push_back("line " + std::to_string(line_no) + ": " + why + ": '" + std::string(t) +
                           "'");
    };
    std::vector<Token> tokens;
    std::string why;
    if (!Tokenize(t, &tokens, &why)) {
      error(why);
      continue;
    }
    UsbGuardRuleText r;
    r.line = line_no;
    r.text = std::string(t);
    r.target = tokens.empty() ? "" : tokens[0].text;
    if (tokens.empty() || tokens[0].quoted ||
        (r.target != "allow" && r.target != "block" && r.target != "reject")) {
      error("unknown rule target");
      continue;
    }
    bool ok = true;
    bool seen_id = false;
    bool seen_interface = false;
    size_t i = 1;
    // Reads "value" or "[operator] { v1 v2 ... }" after an attribute name.
    auto read_values = [&](std::string* op, std::vector<std::string>* values) {
      if (i >= tokens.size()) return false;
      *op = "equals";
      if (!tokens[i].quoted && !tokens[i].brace && IsOperator(tokens[i].text)) {
        *op = tokens[i].text;
        ++i;
        if (i >= tokens.size() || !tokens[i].brace || tokens[i].text != "{") return false;
      }
      if (tokens[i].brace) {
        if (tokens[i].text != "{") return false;
        ++i;
        while (i < tokens.size() && !(tokens[i].brace && tokens[i].text == "}")) {
          if (tokens[i].brace) return false;
          values->push_back(tokens[i].text);
          ++i;
        }
        if (i >= tokens.size()) return false;  // no closing brace
        ++i;
        return true;
      }
      values->push_back(tokens[i].text);
      ++i;
      return true;
    };
    while (ok && i < tokens.size()) {
      const Token& tok = tokens[i];
      if (tok.quoted || tok.brace) {
        error("unexpected '" + tok.text + "'");
        ok = false;
        break;
      }
      std::string name = tok.text;
      if (ValidDeviceId(Lower(name))) {
        // "allow 1050:0011 ..." (the man page's example) names the device id without "id".
        name = "id";
      } else {
        ++i;
      }
      std::string op;
      std::vector<std::string> values;
      if (name == "id" || name == "with-interface") {
        bool& seen = name == "id" ? seen_id : seen_interface;
        if (seen) {
          error("duplicate attribute " + name);
          ok = false;
          break;
        }
        seen = true;
        if (!read_values(&op, &values)) {
          error("malformed " + name + " value");
          ok = false;
          break;
        }
        for (auto& v : values) {
          v = Lower(v);
          if (name == "id" ? !ValidDeviceId(v) : !ValidInterface(v)) {
            error("invalid " + name + " value '" + v + "'");
            ok = false;
            break;
          }
        }
        if (!ok) break;
        if (name == "id") {
          r.id_operator = op;
          r.ids = std::move(values);
        } else {
          r.interface_operator = op;
          r.interfaces = std::move(values);
        }
      } else if (name == "label") {
        if (!read_values(&op, &values)) {
          error("malformed label value");
          ok = false;
          break;
        }
      } else if (name == "if" || std::find(std::begin(kNarrowing), std::end(kNarrowing), name) !=
                                     std::end(kNarrowing)) {
        if (!read_values(&op, &values)) {
          error("malformed " + name + " value");
          ok = false;
          break;
        }
        r.other_attributes.push_back(name + " " + (op == "equals" ? "" : op + " ") +
                                     Join(values, " "));
      } else {
        error("unknown attribute '" + name + "'");
        ok = false;
        break;
      }
    }
    if (ok) out.rules.push_back(std::move(r));
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

#include "collectors/linux/kconfig.h"

#include <utility>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// KConfig's printable-value escapes; an unknown escape keeps the character after the backslash.
std::string Unescape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\' || i + 1 == v.size()) {
      out.push_back(v[i]);
      continue;
    }
    char c = v[++i];
    switch (c) {
      case 's':
        out.push_back(' ');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'x': {
        int hi = i + 1 < v.size() ? HexDigit(v[i + 1]) : -1;
        int lo = i + 2 < v.size() ? HexDigit(v[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
          out.push_back(static_cast<char>(hi * 16 + lo));
          i += 2;
        } else {
          out.push_back('x');
        }
        break;
      }
      default:
        out.push_back(c);
        break;
    }
  }
  return out;
}

std::string LineWarning(int line, std::string_view what, std::string_view text) {
  constexpr size_t kMaxShown = 80;
  std::string shown(text.substr(0, kMaxShown));
  if (text.size() > kMaxShown) shown += "...";
  return "line " + std::to_string(line) + ": " + std::string(what) + ": '" + shown + "'";
}

}  // namespace

KConfigFile ParseKConfig(std::string_view text) {
  KConfigFile out;
  std::string group;
  bool seen_group = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') continue;

    if (line.front() == '[') {
      if (line == "[$i]") {
        if (seen_group) {
          out.warnings.push_back(
              LineWarning(line_no, "[$i] after a group header is ignored", line));
        } else {
          out.immutable = true;
        }
        continue;
      }
      // [A][B][$i]: nested group A/B, immutable.
      std::string name;
      bool immutable = false;
      bool valid = true;
      size_t p = 0;
      while (p < line.size()) {
        if (line[p] != '[') {
          valid = false;
          break;
        }
        size_t close = line.find(']', p + 1);
        if (close == std::string_view::npos) {
          valid = false;
          break;
        }
        std::string_view segment = line.substr(p + 1, close - p - 1);
        p = close + 1;
        if (segment == "$i" && p == line.size()) {
          immutable = true;
        } else {
          if (!name.empty()) name += '/';
          name += Unescape(segment);
        }
      }
      if (!valid || name.empty()) {
        out.warnings.push_back(LineWarning(line_no, "invalid group header", line));
        continue;
      }
      group = std::move(name);
      seen_group = true;
      KConfigGroup& g = out.groups[group];
      g.immutable = g.immutable || immutable;
      continue;
    }

    // KConfig writes deleted entries as a bare "Key[$d]"; any other line needs '='.
    size_t eq = line.find('=');
    std::string_view key_part = Trim(line.substr(0, eq));
    std::string_view value = eq == std::string_view::npos ? "" : Trim(line.substr(eq + 1));
    bool immutable = false;
    bool deleted = false;
    bool localized = false;
    std::string_view key = key_part;
    if (size_t open = key_part.find('['); open != std::string_view::npos) {
      key = Trim(key_part.substr(0, open));
      std::string_view opts = key_part.substr(open);
      while (!opts.empty() && opts.front() == '[') {
        size_t close = opts.find(']');
        if (close == std::string_view::npos) break;
        std::string_view opt = opts.substr(1, close - 1);
        opts.remove_prefix(close + 1);
        if (!opt.empty() && opt.front() == '$') {
          for (char f : opt.substr(1)) {
            if (f == 'i') immutable = true;
            if (f == 'd') deleted = true;
          }
        } else {
          localized = true;
        }
      }
      if (!opts.empty()) {
        out.warnings.push_back(LineWarning(line_no, "invalid entry options", line));
        continue;
      }
    }
    if (eq == std::string_view::npos && !deleted) {
      out.warnings.push_back(LineWarning(line_no, "line without '='", line));
      continue;
    }
    if (key.empty()) {
      out.warnings.push_back(LineWarning(line_no, "entry without a key", line));
      continue;
    }
    if (localized) continue;
    KConfigGroup& g = out.groups[group];
    auto it = g.entries.find(std::string(key));
    if (it != g.entries.end() && it->second.immutable) continue;  // immutable: first one sticks
    KConfigEntry& e = g.entries[std::string(key)];
    e.value = deleted ? std::string() : Unescape(value);
    e.immutable = immutable;
    e.deleted = deleted;
    e.raw = std::string(line);
    e.line = line_no;
  }
  return out;
}

KConfigLookup LookupKConfig(const std::vector<KConfigLayer>& layers, const std::string& group,
                            const std::string& key) {
  KConfigLookup r;
  for (const KConfigLayer& layer : layers) {
    const KConfigFile& f = layer.file;
    const KConfigGroup* g = nullptr;
    if (auto git = f.groups.find(group); git != f.groups.end()) g = &git->second;
    const KConfigEntry* e = nullptr;
    if (g != nullptr) {
      if (auto eit = g->entries.find(key); eit != g->entries.end()) e = &eit->second;
    }
    if (e != nullptr) {
      r.found = !e->deleted;
      r.value = e->deleted ? KConfigValue{} : KConfigValue{e->value, layer.source, e->raw, e->line};
    }
    if (f.immutable || (g != nullptr && g->immutable) || (e != nullptr && e->immutable)) {
      r.locked = true;
      r.locked_by = layer.source;
      break;  // higher-priority files cannot change it
    }
  }
  return r;
}

}  // namespace vigil::collectors::linux_os

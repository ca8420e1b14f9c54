#include "collectors/linux/xfconf.h"

#include <glib.h>

#include <utility>

namespace vigil::collectors::linux_os {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(g_ascii_tolower(c));
  return out;
}

struct Frame {
  std::string path;  // "" for the channel, the property path otherwise
  std::string locked;
  std::string unlocked;
  bool property = false;
};

struct ParseState {
  XfconfChannel channel;
  bool seen_channel = false;
  std::vector<Frame> stack;
  GMarkupParseContext* context = nullptr;
};

const char* Attr(const gchar** names, const gchar** values, const char* want) {
  for (size_t i = 0; names[i] != nullptr; ++i) {
    if (g_strcmp0(names[i], want) == 0) return values[i];
  }
  return nullptr;
}

void StartElement(GMarkupParseContext*, const gchar* element, const gchar** names,
                  const gchar** values, gpointer user_data, GError** error) {
  auto* st = static_cast<ParseState*>(user_data);
  const std::string_view name = element;
  const char* locked = Attr(names, values, "locked");
  const char* unlocked = Attr(names, values, "unlocked");
  if (st->stack.empty()) {
    if (name != "channel" || st->seen_channel) {
      g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                  "the document element is <%s>, not <channel>", element);
      return;
    }
    st->seen_channel = true;
    const char* channel_name = Attr(names, values, "name");
    st->channel.name = channel_name ? channel_name : "";
    st->channel.locked = locked ? locked : "";
    st->channel.unlocked = unlocked ? unlocked : "";
    st->stack.push_back({"", st->channel.locked, st->channel.unlocked, false});
    return;
  }
  const Frame parent = st->stack.back();
  if (name != "property") {
    // <value> items of arrays and anything unknown: kept on the stack only to match the end tag.
    st->stack.push_back({parent.path, parent.locked, parent.unlocked, false});
    return;
  }
  if (!parent.property && !parent.path.empty()) {
    g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                "<property> inside a non-property element");
    return;
  }
  const char* prop_name = Attr(names, values, "name");
  if (prop_name == nullptr || *prop_name == '\0' ||
      std::string_view(prop_name).find('/') != std::string_view::npos) {
    g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                "<property> without a valid name");
    return;
  }
  Frame f;
  f.property = true;
  f.path = parent.path + "/" + prop_name;
  // Only one of locked/unlocked is meant to be set; the nearest element that sets either wins.
  if (locked != nullptr || unlocked != nullptr) {
    f.locked = locked ? locked : "";
    f.unlocked = unlocked ? unlocked : "";
  } else {
    f.locked = parent.locked;
    f.unlocked = parent.unlocked;
  }
  XfconfProperty p;
  p.path = f.path;
  const char* type = Attr(names, values, "type");
  p.type = type ? type : "";
  if (const char* value = Attr(names, values, "value"); value != nullptr) p.value = value;
  int line = 0;
  g_markup_parse_context_get_position(st->context, &line, nullptr);
  p.line = line;
  p.locked = f.locked;
  p.unlocked = f.unlocked;
  // A repeated property: the later element wins, as xfconfd's hash-table insert does.
  st->channel.properties[Lower(f.path)] = std::move(p);
  st->stack.push_back(std::move(f));
}

void EndElement(GMarkupParseContext*, const gchar*, gpointer user_data, GError**) {
  auto* st = static_cast<ParseState*>(user_data);
  if (!st->stack.empty()) st->stack.pop_back();
}

bool ListMatches(std::string_view list, std::string_view user,
                 const std::vector<std::string>& groups) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(';', pos);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "*" || (!item.empty() && item == user)) return true;
    if (item.size() > 1 && item.front() == '@') {
      for (const auto& g : groups) {
        if (item.substr(1) == g) return true;
      }
    }
    pos = end + 1;
  }
  return false;
}

}  // namespace

Result<XfconfChannel> ParseXfconfChannel(std::string_view xml) {
  ParseState st;
  GMarkupParser parser{};
  parser.start_element = StartElement;
  parser.end_element = EndElement;
  GMarkupParseContext* ctx =
      g_markup_parse_context_new(&parser, G_MARKUP_DEFAULT_FLAGS, &st, nullptr);
  st.context = ctx;
  GError* error = nullptr;
  bool ok =
      g_markup_parse_context_parse(ctx, xml.data(), static_cast<gssize>(xml.size()), &error) &&
      g_markup_parse_context_end_parse(ctx, &error);
  g_markup_parse_context_free(ctx);
  if (!ok) {
    std::string msg = error ? error->message : "malformed XML";
    if (error) g_error_free(error);
    return Status::Corruption("not a valid xfconf channel file: " + msg);
  }
  if (!st.seen_channel) return Status::Corruption("not a valid xfconf channel file: no <channel>");
  return std::move(st.channel);
}

bool XfconfLockApplies(std::string_view locked, std::string_view unlocked, std::string_view user,
                       const std::vector<std::string>& groups) {
  if (!locked.empty()) return ListMatches(locked, user, groups);
  if (!unlocked.empty()) return !ListMatches(unlocked, user, groups);
  return false;
}

XfconfLookup LookupXfconf(const std::vector<XfconfLayer>& layers, std::string_view path,
                          std::string_view user, const std::vector<std::string>& groups) {
  XfconfLookup out;
  const std::string key = Lower(path);
  for (const XfconfLayer& layer : layers) {
    const auto it = layer.channel.properties.find(key);
    const bool has = it != layer.channel.properties.end();
    // Kiosk locks only count in system files; a lock on the channel covers every property.
    bool locks = false;
    if (layer.system) {
      // The property's own lists (already inherited from its ancestors when parsed), else those
      // of its nearest ancestor in this file, else the channel's.
      const XfconfProperty* holder = has ? &it->second : nullptr;
      for (std::string up = key; holder == nullptr;) {
        size_t slash = up.rfind('/');
        if (slash == std::string::npos || slash == 0) break;
        up.resize(slash);
        if (auto a = layer.channel.properties.find(up); a != layer.channel.properties.end()) {
          holder = &a->second;
        }
      }
      locks = holder != nullptr
                  ? XfconfLockApplies(holder->locked, holder->unlocked, user, groups)
                  : XfconfLockApplies(layer.channel.locked, layer.channel.unlocked, user, groups);
    }
    if (has && it->second.value) {
      out.found = true;
      out.property = it->second;
      out.source = layer.source;
    } else if (locks) {
      out.found = false;  // locked without a value: the application default
      out.property = {};
      out.source.clear();
    }
    if (locks) {
      out.locked = true;
      out.locked_by = layer.source;
      return out;
    }
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

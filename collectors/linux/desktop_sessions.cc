#include "collectors/linux/desktop_sessions.h"

#include "collectors/text.h"

namespace vigil::collectors::linux_os {

std::optional<IniValue> FindIniValue(std::string_view text, std::string_view group,
                                     std::string_view key) {
  std::optional<IniValue> out;
  bool in_group = false;
  int line_no = 0;
  for (std::string_view raw : SplitLines(text)) {
    ++line_no;
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      size_t end = line.find(']');
      in_group = end != std::string_view::npos && line.substr(1, end - 1) == group;
      continue;
    }
    if (!in_group) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || Trim(line.substr(0, eq)) != key) continue;
    out = IniValue{std::string(Trim(line.substr(eq + 1))), line_no, std::string(line)};
  }
  return out;
}

std::optional<IniValue> AccountsServiceSession(std::string_view text) {
  auto session = FindIniValue(text, "User", "Session");
  if (session && !session->value.empty()) return session;
  auto xsession = FindIniValue(text, "User", "XSession");
  if (xsession && !xsession->value.empty()) return xsession;
  return std::nullopt;
}

std::string DesktopOfProcess(std::string_view comm) {
  comm = Trim(comm);
  if (!comm.empty() && comm.back() == '\n') comm.remove_suffix(1);
  if (comm == "gnome-shell") return "GNOME";
  if (comm == "plasmashell" || comm == "kwin_wayland" || comm == "kwin_x11") return "KDE";
  if (comm == "xfce4-session") return "XFCE";
  if (comm == "sway") return "SWAY";
  return "";
}

}  // namespace vigil::collectors::linux_os

// Which desktop sessions a user picks: pure parsers for the files display managers keep.
//
// ~/.dmrc ([Desktop] Session=NAME, written by LightDM/GDM for the last session chosen) and
// AccountsService's /var/lib/AccountsService/users/USER ([User] Session= or, older, XSession=)
// name the session the login screen preselects: NAME is a session file's basename without
// ".desktop". They are preferences, not restrictions: the login screen still offers every
// installed session. A running process (gnome-shell, plasmashell, xfce4-session, sway) shows a
// desktop in use now. No I/O here.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vigil::collectors::linux_os {

struct IniValue {
  std::string value;
  int line = 0;  // 1-based
  std::string raw;
};

// The value of `key` in `[group]` of a simple INI/keyfile text ('#' and ';' comments, keys and
// group names case-sensitive, surrounding spaces trimmed); the last occurrence wins.
std::optional<IniValue> FindIniValue(std::string_view text, std::string_view group,
                                     std::string_view key);

// The session AccountsService preselects: Session= wins over the legacy XSession=.
std::optional<IniValue> AccountsServiceSession(std::string_view text);

// The desktop a process name (from /proc/PID/comm) belongs to: "GNOME", "KDE", "XFCE", "SWAY",
// or "" for anything else.
std::string DesktopOfProcess(std::string_view comm);

}  // namespace vigil::collectors::linux_os

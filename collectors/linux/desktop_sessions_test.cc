// FindIniValue / AccountsServiceSession / DesktopOfProcess, table-driven.
#include "collectors/linux/desktop_sessions.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("FindIniValue: ~/.dmrc") {
  struct Row {
    std::string name, text;
    std::optional<std::string> value;
    int line;
  };
  const std::vector<Row> rows = {
      {"plain", "[Desktop]\nSession=xfce\n", "xfce", 2},
      {"whitespace", "  [Desktop]\n  Session = plasma  \r\n", "plasma", 2},
      {"commented", "[Desktop]\n#Session=gnome\n; Session=kde\n", std::nullopt, 0},
      {"repeated: last wins", "[Desktop]\nSession=gnome\nSession=sway\n", "sway", 3},
      {"other group", "[Other]\nSession=gnome\n[Desktop]\nLanguage=C\n", std::nullopt, 0},
      {"missing", "", std::nullopt, 0},
      {"no equals", "[Desktop]\nSession\n", std::nullopt, 0},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    auto v = FindIniValue(r.text, "Desktop", "Session");
    CHECK(v.has_value() == r.value.has_value());
    if (v && r.value) {
      CHECK(v->value == *r.value);
      CHECK(v->line == r.line);
    }
  }
}

TEST_CASE("AccountsServiceSession") {
  CHECK(AccountsServiceSession("[User]\nSession=gnome\nXSession=ubuntu\n")->value == "gnome");
  CHECK(AccountsServiceSession("[User]\nXSession=plasma\nIcon=/x\n")->value == "plasma");
  CHECK(AccountsServiceSession("[User]\nSession=\nXSession=xfce\n")->value == "xfce");
  CHECK_FALSE(AccountsServiceSession("[User]\nLanguage=C\n").has_value());
}

TEST_CASE("DesktopOfProcess") {
  CHECK(DesktopOfProcess("gnome-shell\n") == "GNOME");
  CHECK(DesktopOfProcess("plasmashell\n") == "KDE");
  CHECK(DesktopOfProcess("xfce4-session") == "XFCE");
  CHECK(DesktopOfProcess("sway\n") == "SWAY");
  CHECK(DesktopOfProcess("swayidle\n").empty());
  CHECK(DesktopOfProcess("bash\n").empty());
}

}  // namespace
}  // namespace vigil::collectors::linux_os

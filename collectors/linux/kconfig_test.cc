// ParseKConfig and LookupKConfig: KConfig's INI dialect and its immutability cascade.
#include "collectors/linux/kconfig.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseKConfig: entries, groups, comments, escapes") {
  KConfigFile f = ParseKConfig(
      "# kscreenlockerrc written by System Settings\n"
      "\n"
      "[Daemon]\n"
      "Autolock = false \r\n"
      "Timeout=10\n"
      "Timeout=15\n"  // last one wins
      "Greeting=\\sHello\\tworld\\x21\n"
      "Name[de]=Bildschirmsperre\n"  // localized: ignored
      "[Greeter][Wallpaper][org.kde.image][General]\n"
      "Image=file:///usr/share/wallpapers/Next/\n"
      "no equals sign here\n"
      "[broken\n"
      "=orphan value\n");
  REQUIRE(f.groups.count("Daemon") == 1);
  const auto& d = f.groups.at("Daemon").entries;
  CHECK(d.at("Autolock").value == "false");
  CHECK(d.at("Timeout").value == "15");
  CHECK(d.at("Timeout").line == 6);
  CHECK(d.at("Timeout").raw == "Timeout=15");
  CHECK(d.at("Greeting").value == " Hello\tworld!");
  CHECK(d.count("Name") == 0);
  REQUIRE(f.groups.count("Greeter/Wallpaper/org.kde.image/General") == 1);
  CHECK_FALSE(f.immutable);
  CHECK(f.warnings.size() == 3);
}

TEST_CASE("ParseKConfig: immutability markers") {
  struct Row {
    std::string name, text;
    bool file_immutable, group_immutable, entry_immutable;
    std::string value;
  };
  const std::vector<Row> rows = {
      {"entry", "[Daemon]\nTimeout[$i]=5\n", false, false, true, "5"},
      {"entry with spaces", "[Daemon]\nTimeout [$i] = 5\n", false, false, true, "5"},
      {"combined flags", "[Daemon]\nTimeout[$ie]=5\n", false, false, true, "5"},
      {"group", "[Daemon][$i]\nTimeout=5\n", false, true, false, "5"},
      {"file", "# locked down\n[$i]\n[Daemon]\nTimeout=5\n", true, false, false, "5"},
      {"immutable entry is not overwritten later in the file",
       "[Daemon]\nTimeout[$i]=5\nTimeout=60\n", false, false, true, "5"},
      {"[$i] after a group is not file-level", "[Daemon]\nTimeout=5\n[$i]\n", false, false, false,
       "5"},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    KConfigFile f = ParseKConfig(r.text);
    CHECK(f.immutable == r.file_immutable);
    REQUIRE(f.groups.count("Daemon") == 1);
    CHECK(f.groups.at("Daemon").immutable == r.group_immutable);
    REQUIRE(f.groups.at("Daemon").entries.count("Timeout") == 1);
    CHECK(f.groups.at("Daemon").entries.at("Timeout").immutable == r.entry_immutable);
    CHECK(f.groups.at("Daemon").entries.at("Timeout").value == r.value);
  }
}

TEST_CASE("LookupKConfig: system then user, unless the system file locks it") {
  struct Row {
    std::string name, system, user;
    bool found;
    std::string value, source;
    bool locked;
  };
  const std::vector<Row> rows = {
      {"user wins", "[Daemon]\nTimeout=5\n", "[Daemon]\nTimeout=60\n", true, "60", "user", false},
      {"immutable entry", "[Daemon]\nTimeout[$i]=5\n", "[Daemon]\nTimeout=60\n", true, "5",
       "system", true},
      {"immutable group", "[Daemon][$i]\nTimeout=5\n", "[Daemon]\nTimeout=60\n", true, "5",
       "system", true},
      {"immutable group without the key locks the default", "[Daemon][$i]\nAutolock=true\n",
       "[Daemon]\nTimeout=60\n", false, "", "", true},
      {"immutable file", "[$i]\n[Other]\nX=1\n", "[Daemon]\nTimeout=60\n", false, "", "", true},
      {"other group immutable", "[Greeter][$i]\nTheme=x\n", "[Daemon]\nTimeout=60\n", true, "60",
       "user", false},
      {"only system", "[Daemon]\nTimeout=5\n", "", true, "5", "system", false},
      {"user deletes", "[Daemon]\nTimeout=5\n", "[Daemon]\nTimeout[$d]\n", false, "", "", false},
      {"user [$i] changes nothing below it", "[Daemon]\nTimeout=5\n", "[Daemon]\nTimeout[$i]=60\n",
       true, "60", "user", true},
      {"neither", "", "", false, "", "", false},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    std::vector<KConfigLayer> layers = {{"system", ParseKConfig(r.system)},
                                        {"user", ParseKConfig(r.user)}};
    KConfigLookup l = LookupKConfig(layers, "Daemon", "Timeout");
    CHECK(l.found == r.found);
    CHECK(l.locked == r.locked);
    if (r.found) {
      CHECK(l.value.value == r.value);
      CHECK(l.value.source == r.source);
    }
  }
}

TEST_CASE("ParseKConfig tolerates hostile input") {
  const std::vector<std::string> inputs = {
      "",
      "\n\n\n",
      "[",
      "]",
      "[]",
      "[][]\n=\n",
      "[a][$i][b]\nk[$i][$i][de]=v\n",
      "k[=v",
      "k]=v",
      "k=\\",
      "k=\\x",
      "k=\\x4",
      std::string("k=\0v", 4),
      std::string(100000, '['),
  };
  for (const auto& in : inputs) {
    KConfigFile f = ParseKConfig(in);
    (void)LookupKConfig({{"x", f}}, "a", "k");
  }
  CHECK(true);
}

}  // namespace
}  // namespace vigil::collectors::linux_os

// Tests for the modprobe.d, kernel command line, /proc/modules and modules.builtin parsers.
#include "collectors/linux/modprobe.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("NormalizeModuleName treats '-' and '_' alike outside brackets") {
  CHECK(NormalizeModuleName("usb-storage") == "usb_storage");
  CHECK(NormalizeModuleName("usb_storage") == "usb_storage");
  CHECK(NormalizeModuleName("snd-[a-z]*") == "snd_[a-z]*");
}

std::string Render(const ModprobeRule& r) { return r.command + "|" + r.module + "|" + r.argument; }

TEST_CASE("ParseModprobeConfig follows kmod's syntax") {
  struct Case {
    const char* name;
    const char* text;
    std::vector<std::string> want;
    size_t warnings;
  } cases[] = {
      {"install and blacklist",
       "# CIS\ninstall usb-storage /bin/false\nblacklist uas\n",
       {"install|usb_storage|/bin/false", "blacklist|uas|"},
       0},
      {"install keeps the whole command",
       "install usb_storage /sbin/modprobe --ignore-install usb_storage $CMDLINE_OPTS\n",
       {"install|usb_storage|/sbin/modprobe --ignore-install usb_storage $CMDLINE_OPTS"},
       0},
      {"blanks and tabs", "\tblacklist\t usb-storage   \n", {"blacklist|usb_storage|"}, 0},
      {"trailing comment ends a blacklist",
       "blacklist usb-storage # no sticks\n",
       {"blacklist|usb_storage|"},
       0},
      {"continuation joins lines",
       "install usb-storage \\\n/bin/true\n",
       {"install|usb_storage|/bin/true"},
       0},
      {"alias", "alias usb-storage off\n", {"alias|usb_storage|off"}, 0},
      {"options and softdep",
       "options usb-storage quirks=0x1:0x2:u\nsoftdep uas pre: usb-storage\n",
       {"options|usb_storage|quirks=0x1:0x2:u", "softdep|uas|pre: usb-storage"},
       0},
      {"bad lines are ignored with a warning",
       "blacklist\ninstall usb-storage\nfrobnicate x\n  # indented comment\ninclude /etc/x\n",
       {},
       5},
      {"duplicates are all kept in order",
       "install usb-storage /bin/true\ninstall usb-storage /bin/false\n",
       {"install|usb_storage|/bin/true", "install|usb_storage|/bin/false"},
       0},
      {"CRLF", "blacklist usb-storage\r\n", {"blacklist|usb_storage|"}, 0},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.name));
    auto conf = ParseModprobeConfig(c.text);
    std::vector<std::string> got;
    for (const auto& r : conf.rules) got.push_back(Render(r));
    CHECK(got == c.want);
    CHECK(conf.warnings.size() == c.warnings);
  }
  auto conf = ParseModprobeConfig("\n# x\ninstall usb-storage \\\n  /bin/false\nblacklist uas\n");
  REQUIRE(conf.rules.size() == 2);
  CHECK(conf.rules[0].line_no == 3);
  CHECK(conf.rules[1].line_no == 5);
  CHECK(conf.rules[0].text == "install usb-storage   /bin/false");
}

TEST_CASE("install patterns and commands") {
  CHECK(ModulePatternMatches("usb_storage", "usb_storage"));
  CHECK(ModulePatternMatches("usb*", "usb_storage"));
  CHECK(!ModulePatternMatches("usb_storage", "uas"));
  CHECK(!InstallCommandMayLoad("/bin/false"));
  CHECK(!InstallCommandMayLoad("/bin/echo 'usb storage disabled'"));
  CHECK(InstallCommandMayLoad("/sbin/modprobe --ignore-install usb_storage"));
  CHECK(InstallCommandMayLoad("/sbin/insmod /lib/modules/usb-storage.ko"));
  for (const char* blocks :
       {"/bin/true", "/bin/false", "/usr/bin/true", "/usr/bin/false", "/bin/false # CIS 1.1.23",
        "/bin/true #modprobe disabled", "/usr/bin/false\t# no sticks"}) {
    INFO(blocks);
    CHECK(!InstallCommandMayLoad(blocks));
  }
  CHECK(InstallCommandMayLoad("/sbin/modprobe#x usb_storage"));  // '#' inside a word is no comment
}

TEST_CASE("ParseKernelCmdline splits on blanks and honours quotes") {
  auto p = ParseKernelCmdline(
      "BOOT_IMAGE=/vmlinuz ro quiet modprobe.blacklist=uas,usb-storage "
      "foo=\"a b\" module_blacklist=usb_storage\n");
  REQUIRE(p.size() == 6);
  CHECK(p[2].name == "quiet");
  CHECK(p[2].value.empty());
  CHECK(p[3].name == "modprobe.blacklist");
  CHECK(p[3].value == "uas,usb-storage");
  CHECK(p[4].name == "foo");
  CHECK(p[4].value == "a b");
  CHECK(p[4].text == "foo=\"a b\"");
  CHECK(p[5].value == "usb_storage");
  CHECK(ParseKernelCmdline("").empty());
}

TEST_CASE("ParseProcModules and ParseModulesBuiltin") {
  auto loaded = ParseProcModules(
      "uas 32768 0 - Live 0x0000000000000000\n"
      "usb_storage 81920 2 uas, Live 0x0000000000000000\n\n");
  CHECK(loaded.count("usb_storage") == 1);
  CHECK(loaded.count("uas") == 1);
  CHECK(loaded.size() == 2);
  auto builtin = ParseModulesBuiltin(
      "kernel/drivers/usb/core/usbcore.ko\nkernel/drivers/usb/storage/usb-storage.ko\n");
  CHECK(builtin.count("usb_storage") == 1);
  CHECK(builtin.count("usbcore") == 1);
  CHECK(ParseModulesBuiltin("kernel/drivers/usb/core/usbcore.ko\n").count("usb_storage") == 0);
}

}  // namespace
}  // namespace vigil::collectors::linux_os

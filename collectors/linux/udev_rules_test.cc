// Tests for the udev rules parser and the read-only rule detection.
#include "collectors/linux/udev_rules.h"

#include <doctest/doctest.h>

#include <string>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseUdevRules splits keys, operators and values; joins continuations") {
  auto r = ParseUdevRules(
      "# comment\n"
      "ACTION==\"add\", SUBSYSTEMS==\"usb\", \\\n"
      "  SUBSYSTEM==\"block\", RUN+=\"/sbin/blockdev --setro %N\"\n"
      "\n"
      "KERNEL!=\"sd*\" ATTR{ro}=\"1\"\n"
      "ENV{ID_BUS}==\"usb\",GOTO=\"end\"\n"
      "broken line without operator\n");
  REQUIRE(r.rules.size() == 3);
  CHECK(r.rules[0].line == 2);
  REQUIRE(r.rules[0].keys.size() == 4);
  CHECK(r.rules[0].keys[3].key == "RUN");
  CHECK(r.rules[0].keys[3].op == "+=");
  CHECK(r.rules[0].keys[3].value == "/sbin/blockdev --setro %N");
  CHECK(r.rules[1].keys[0].op == "!=");
  CHECK(r.rules[1].keys[1].key == "ATTR");
  CHECK(r.rules[1].keys[1].attr == "ro");
  CHECK(r.rules[2].keys[0].attr == "ID_BUS");
  CHECK(r.rules[2].line == 6);
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].rfind("line 7:", 0) == 0);
}

TEST_CASE("UdevReadOnlyMechanism") {
  struct Case {
    const char* rule;
    const char* want;
  } cases[] = {
      {"ACTION==\"add\", SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", RUN+=\"/sbin/blockdev --setro "
       "%N\"",
       "blockdev --setro"},
      {"SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", RUN{program}+=\"/usr/sbin/blockdev -r "
       "$devnode\"",
       "blockdev --setro"},
      {"SUBSYSTEM==\"block\", ENV{ID_BUS}==\"usb\", ATTR{ro}=\"1\"", "ATTR{ro}=1"},
      {"ACTION==\"add|change\", DRIVERS==\"usb-storage\", ATTR{ro}=\"1\"", "ATTR{ro}=1"},
      // Every block device read-only covers USB ones too.
      {"SUBSYSTEM==\"block\", RUN+=\"/sbin/blockdev --setro %N\"", "blockdev --setro"},
      // Not on add: does nothing when a stick appears.
      {"ACTION==\"remove\", SUBSYSTEMS==\"usb\", RUN+=\"/sbin/blockdev --setro %N\"", ""},
      // Another subsystem.
      {"SUBSYSTEM==\"net\", SUBSYSTEMS==\"usb\", RUN+=\"/sbin/blockdev --setro %N\"", ""},
      // Not restricted to USB nor to block devices.
      {"KERNEL==\"sd*\", RUN+=\"/sbin/blockdev --setro %N\"", ""},
      // Read-write or a different command.
      {"SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", RUN+=\"/sbin/blockdev --setrw %N\"", ""},
      {"SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", ATTR{ro}=\"0\"", ""},
      {"SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", ATTR{ro}==\"1\"", ""},  // a match, no effect
      {"SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", RUN+=\"/bin/echo -r blockdev-free\"", ""},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.rule));
    auto r = ParseUdevRules(c.rule);
    REQUIRE(r.rules.size() == 1);
    CHECK(UdevReadOnlyMechanism(r.rules[0]) == c.want);
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

// Tests for the mount-table parser and device-to-disk naming.
#include "collectors/linux/mounts.h"

#include <doctest/doctest.h>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseMounts decodes octal escapes and options") {
  auto m = ParseMounts(
      "/dev/nvme0n1p2 / ext4 rw,relatime 0 0\n"
      "/dev/sdb1 /media/alice/MY\\040STICK vfat ro,nosuid,uid=1000 0 0\n"
      "garbage line\n"
      "\n"
      "tmpfs /run tmpfs rw 0 0");
  REQUIRE(m.size() == 3);
  CHECK(m[1].device == "/dev/sdb1");
  CHECK(m[1].mount_point == "/media/alice/MY STICK");
  CHECK(m[1].fs_type == "vfat");
  CHECK(HasMountOption(m[1], "ro"));
  CHECK(!HasMountOption(m[0], "ro"));
  CHECK(m[2].device == "tmpfs");
  CHECK(ParseMounts("a b c d\\").size() == 1);
  CHECK(ParseMounts("/dev/x /a\\13 t o").at(0).mount_point == "/a\\13");
}

TEST_CASE("DiskForDevice") {
  struct Case {
    const char* dev;
    const char* disk;
  } cases[] = {
      {"/dev/sdb1", "sdb"},
      {"/dev/sdb", "sdb"},
      {"/dev/sdaa12", "sdaa"},
      {"/dev/mmcblk0p1", "mmcblk0"},
      {"/dev/mmcblk0", "mmcblk0"},
      {"/dev/nvme0n1p2", "nvme0n1"},
      {"/dev/nvme0n1", "nvme0n1"},
      {"/dev/sr0", "sr0"},
      {"/dev/vda3", "vda"},
      {"tmpfs", ""},
      {"/dev/mapper/luks-1", ""},
      {"/dev/loop0", ""},
      {"/dev/sd", ""},
      {"/dev/", ""},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.dev));
    CHECK(DiskForDevice(c.dev) == c.disk);
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

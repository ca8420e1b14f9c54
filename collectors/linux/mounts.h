// /proc/self/mounts (fstab(5) format) and block-device naming, parsed as pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct MountEntry {
  std::string device;       // "/dev/sdb1", "tmpfs", ... with \040-style escapes decoded
  std::string mount_point;  // decoded
  std::string fs_type;
  std::vector<std::string> options;  // "rw", "nosuid", ...
};

// Lines with fewer than four fields are skipped.
std::vector<MountEntry> ParseMounts(std::string_view text);

bool HasMountOption(const MountEntry& m, std::string_view option);

// The whole-disk name under /sys/block for a /dev node that may be a partition:
// /dev/sdb1 -> sdb, /dev/mmcblk0p1 -> mmcblk0, /dev/nvme0n1p2 -> nvme0n1, /dev/sr0 -> sr0.
// Empty when the path is not a disk-like /dev node (tmpfs, /dev/mapper/..., /dev/loop0).
std::string DiskForDevice(std::string_view device);

}  // namespace vigil::collectors::linux_os

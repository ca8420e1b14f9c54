#include "collectors/linux/mounts.h"

#include <algorithm>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The kernel escapes ' ', '\t', '\n' and '\\' in mount fields as a backslash and three octal
// digits (seq_file's mangle); anything else is kept as written.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      std::string_view oct = s.substr(i + 1, 3);
      if (std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        int v = (oct[0] - '0') * 64 + (oct[1] - '0') * 8 + (oct[2] - '0');
        if (v < 256) {
          out.push_back(static_cast<char>(v));
          i += 3;
          continue;
        }
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

std::vector<MountEntry> ParseMounts(std::string_view text) {
  std::vector<MountEntry> out;
  for (std::string_view line : SplitLines(text)) {
    std::vector<std::string_view> f;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      size_t b = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
      if (i > b) f.push_back(line.substr(b, i - b));
    }
    if (f.size() < 4 || f[0][0] == '#') continue;
    MountEntry m;
    m.device = Unescape(f[0]);
    m.mount_point = Unescape(f[1]);
    m.fs_type = Unescape(f[2]);
    std::string_view opts = f[3];
    size_t start = 0;
    for (;;) {
      size_t comma = opts.find(',', start);
      std::string_view o =
          opts.substr(start, comma == std::string_view::npos ? comma : comma - start);
      if (!o.empty()) m.options.emplace_back(o);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    out.push_back(std::move(m));
  }
  return out;
}

bool HasMountOption(const MountEntry& m, std::string_view option) {
  return std::find(m.options.begin(), m.options.end(), option) != m.options.end();
}

std::string DiskForDevice(std::string_view device) {
  if (!StartsWith(device, "/dev/")) return "";
  std::string_view name = device.substr(5);
  if (name.empty() || name.find('/') != std::string_view::npos) return "";
  // sdX, hdX, vdX, xvdX: letters name the disk, trailing digits the partition.
  for (std::string_view prefix : {"sd", "hd", "vd", "xvd"}) {
    if (StartsWith(name, prefix) && name.size() > prefix.size() && !IsDigit(name[prefix.size()])) {
      size_t e = name.size();
      while (e > prefix.size() && IsDigit(name[e - 1])) --e;
      return std::string(name.substr(0, e));
    }
  }
  if (StartsWith(name, "sr") && name.size() > 2 && IsDigit(name[2])) return std::string(name);
  // mmcblkN, nvmeNnM: a partition is "p<digits>" after the disk's own trailing digit.
  for (std::string_view prefix : {"mmcblk", "nvme"}) {
    if (!StartsWith(name, prefix) || name.size() <= prefix.size() ||
        !IsDigit(name[prefix.size()])) {
      continue;
    }
    size_t e = name.size();
    while (e > prefix.size() && IsDigit(name[e - 1])) --e;
    if (e < name.size() && e > prefix.size() + 1 && name[e - 1] == 'p' && IsDigit(name[e - 2])) {
      return std::string(name.substr(0, e - 1));
    }
    return std::string(name);
  }
  return "";
}

}  // namespace vigil::collectors::linux_os

// Fuzz target: the modprobe.d, kernel command line, /proc/modules, modules.builtin and mount
// table parsers must accept any bytes without crashing, hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/modprobe.h"
#include "collectors/linux/mounts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace vigil::collectors::linux_os;
  for (const ModprobeRule& r : ParseModprobeConfig(text).rules) {
    (void)ModulePatternMatches(r.module, "usb_storage");
    (void)InstallCommandMayLoad(r.argument);
  }
  (void)ParseKernelCmdline(text);
  (void)ParseProcModules(text);
  (void)ParseModulesBuiltin(text);
  for (const MountEntry& m : ParseMounts(text)) {
    (void)DiskForDevice(m.device);
    (void)HasMountOption(m, "ro");
  }
  (void)DiskForDevice(text);
  return 0;
}

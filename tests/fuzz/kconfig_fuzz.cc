// Fuzz target for the KConfig INI parser and cascade lookup: any text must parse without
// crashing; the input is split in two to exercise the system/user merge.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "collectors/linux/kconfig.h"

using namespace vigil::collectors::linux_os;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t split = text.find('\f');
  std::string_view system = text.substr(0, split);
  std::string_view user = split == std::string_view::npos ? "" : text.substr(split + 1);
  std::vector<KConfigLayer> layers = {{"system", ParseKConfig(system)},
                                      {"user", ParseKConfig(user)}};
  for (const char* key : {"Timeout", "Autolock", "Lock", "LockGrace"}) {
    (void)LookupKConfig(layers, "Daemon", key);
  }
  for (const auto& [group, g] : layers[0].file.groups) {
    for (const auto& [key, e] : g.entries) (void)LookupKConfig(layers, group, key);
  }
  return 0;
}

// Fuzz target: the kernel build configuration parser (/boot/config-<release>) must accept any
// bytes without crashing, hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/kernel_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)vigil::collectors::linux_os::ParseKernelConfig(text);
  return 0;
}

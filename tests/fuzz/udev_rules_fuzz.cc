// Fuzz target: the udev rules parser and the read-only detection must accept any bytes without
// crashing, hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/udev_rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace vigil::collectors::linux_os;
  for (const UdevRule& r : ParseUdevRules(text).rules) (void)UdevReadOnlyMechanism(r);
  return 0;
}

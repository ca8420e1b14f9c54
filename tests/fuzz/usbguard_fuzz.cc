// Fuzz target: the USBGuard daemon configuration and rule parsers must accept any bytes without
// crashing, hanging or reading out of bounds, and every parsed rule must be well formed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "collectors/linux/usbguard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace vigil::collectors::linux_os;
  (void)ParseUsbGuardDaemonConf(text);
  for (const UsbGuardRuleText& r : ParseUsbGuardRules(text).rules) {
    if (r.target != "allow" && r.target != "block" && r.target != "reject") std::abort();
    if (r.line <= 0) std::abort();
    for (const auto& i : r.interfaces) {
      if (i.size() < 5) std::abort();  // at least "*:*:*"
    }
  }
  return 0;
}

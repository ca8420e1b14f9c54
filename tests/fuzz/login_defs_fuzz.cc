// Fuzz target: the login.defs and /etc/shadow parsers must accept any bytes without crashing,
// hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/shadow.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace vigil::collectors::linux_os;
  for (const auto& [key, v] : ParseLoginDefsLines(text)) (void)LoginDefsNumber(v.value);
  (void)LoginDefsNumber(text);
  (void)ParseShadow(text);
  return 0;
}

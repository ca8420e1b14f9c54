// Fuzz target for the ~/.dmrc / AccountsService parsers and the process-name mapping.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/desktop_sessions.h"

using namespace vigil::collectors::linux_os;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)FindIniValue(text, "Desktop", "Session");
  (void)AccountsServiceSession(text);
  (void)DesktopOfProcess(text);
  return 0;
}

// Fuzz target for the sway and swayidle config parsers: any text must parse without crashing.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/linux/sway.h"

using namespace vigil::collectors::linux_os;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> vars;
  std::vector<std::string> includes;
  SwayIdle idle;
  ParseSwayConfig(text, "config", &vars, &includes, &idle);
  ParseSwayConfig(text, "config", &vars, &includes, &idle);  // again, with the variables it defined
  ParseSwayidleConfig(text, "swayidle", &idle);
  if (idle.lock_timeout && idle.lock_timeout->seconds <= 0) __builtin_trap();
  return 0;
}

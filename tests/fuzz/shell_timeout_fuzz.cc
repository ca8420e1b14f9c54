// Fuzz target for the TMOUT statement parser: any text must parse and fold without crashing;
// the input is split at '\f' into two files to exercise readonly freezing across files.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/shell_timeout.h"

using namespace vigil::collectors::linux_os;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t split = text.find('\f');
  ShellTimeoutState state;
  ApplyShellTimeout("/etc/profile", ParseShellTimeout(text.substr(0, split)), &state);
  if (split != std::string_view::npos) {
    ApplyShellTimeout("/etc/bash.bashrc", ParseShellTimeout(text.substr(split + 1)), &state);
  }
  if (state.set && state.seconds <= 0) __builtin_trap();  // a set TMOUT is always positive
  return 0;
}

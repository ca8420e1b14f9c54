// Netlink uevent datagrams: parsed by the agent from a socket.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/uevents.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ev = vigil::agent::ParseUevent(std::string_view(reinterpret_cast<const char*>(data), size));
  if (ev) (void)vigil::agent::AffectsUsbStorage(*ev);
  return 0;
}

// Fuzz target for the xfconf channel parser (GMarkup) and the Kiosk lookup: any bytes must
// either parse or fail with a status, never crash; the input is split at '\f' into a system
// and a user file.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "collectors/linux/xfconf.h"

using namespace vigil::collectors::linux_os;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t split = text.find('\f');
  std::vector<XfconfLayer> layers;
  auto system = ParseXfconfChannel(text.substr(0, split));
  if (system.ok()) layers.push_back({"system", true, std::move(system).value()});
  if (split != std::string_view::npos) {
    auto user = ParseXfconfChannel(text.substr(split + 1));
    if (user.ok()) layers.push_back({"user", false, std::move(user).value()});
  }
  for (const char* path : {"/saver/enabled", "/saver/idle-activation/delay", "/lock/enabled"}) {
    (void)LookupXfconf(layers, path, "alice", {"staff"});
  }
  if (!layers.empty()) {
    for (const auto& [key, p] : layers[0].channel.properties) {
      (void)LookupXfconf(layers, p.path, "alice", {"staff"});
      (void)XfconfLockApplies(p.locked, p.unlocked, "bob", {});
    }
  }
  return 0;
}

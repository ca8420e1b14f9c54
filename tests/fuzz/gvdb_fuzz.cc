// Fuzz target for the GVDB reader: any bytes must yield a table or an error, never a crash, an
// out-of-bounds read or a hang. Exercises every accessor the dconf resolution uses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "collectors/linux/gvdb.h"

using vigil::collectors::linux_os::GvdbTable;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto table = GvdbTable::Parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!table.ok()) return 0;
  (void)table->GetValue("/org/gnome/desktop/session/idle-delay");
  (void)table->HasValue("/org/gnome/desktop/screensaver/lock-enabled");
  auto names = table->Names();
  if (names.ok()) {
    size_t n = 0;
    for (const std::string& name : *names) {
      if (++n > 256) break;  // keep each input fast
      (void)table->GetValue(name);
      auto sub = table->GetTable(name);
      if (sub.ok() && sub->has_value()) (void)(*sub)->Names();
    }
  }
  auto locks = table->GetTable(".locks");
  if (locks.ok() && locks->has_value()) {
    (void)(*locks)->HasValue("/org/gnome/desktop/session/idle-delay");
  }
  return 0;
}

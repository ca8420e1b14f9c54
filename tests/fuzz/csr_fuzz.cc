// Enrollment CSRs and peer certificates arrive from the network: parsing must never crash, leak
// or prompt for a password, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proto/pki.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kDeviceKey(32, '\x5a');
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)vigil::pki::CheckCsr(text, kDeviceKey);
  (void)vigil::pki::CertCommonName(text);
  return 0;
}

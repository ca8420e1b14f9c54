// The server's first contact with untrusted bytes: a SignedAttestation from the network, its
// verification, and the parsing of the inner attestation it claims.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proto/signing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kKey(32, '\x11');
  std::string bytes(reinterpret_cast<const char*>(data), size);
  vigil::v1::SignedAttestation envelope;
  if (envelope.ParseFromString(bytes)) {
    (void)vigil::signing::VerifyAttestation(envelope, kKey);
    (void)vigil::signing::VerifyAttestation(envelope, envelope.key_id());
  }
  vigil::v1::Attestation claimed;
  (void)claimed.ParseFromString(bytes);
  return 0;
}

// The server re-judges evidence a device sent: any Attestation the wire can carry, under any
// valid policy, must evaluate without crashing. The first byte picks a policy shape; the rest is
// the serialized attestation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "collectors/evaluate.h"
#include "collectors/policy.h"
#include "vigil/v1/attestation.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  vigil::v1::Policy policy = vigil::collectors::DefaultPolicy();
  switch (data[0] % 4) {
    case 1:
      policy.mutable_usb_storage()->set_mode(vigil::v1::READ_ONLY);
      break;
    case 2:
      policy.mutable_usb_storage()->set_mode(vigil::v1::ALLOWED);
      policy.mutable_usb_storage()->add_allowed_devices("0781:5581");
      policy.mutable_screen_lock()->set_max_shell_timeout_seconds(600);
      break;
    case 3:
      policy.clear_screen_lock();
      policy.clear_password();
      break;
  }
  vigil::v1::Attestation att;
  if (!att.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  vigil::collectors::EvaluateAll(policy, att.mutable_checks());
  return 0;
}

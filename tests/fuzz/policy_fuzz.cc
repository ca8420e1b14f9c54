// Policy, agent-config and enrollment-bundle JSON come from files people edit: strict parsing
// must never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "collectors/evaluate.h"
#include "collectors/policy.h"
#include "proto/json.h"
#include "vigil/v1/config.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto policy = vigil::collectors::ParsePolicy(text, "fuzz");
  if (policy.ok()) {
    (void)vigil::collectors::PolicyVersion(*policy);
    vigil::v1::Evidence e;
    e.mutable_usb_storage();
    (void)vigil::collectors::Evaluate("usb_storage", e, *policy);
  }
  vigil::v1::AgentConfig config;
  (void)vigil::ParseJsonStrict(text, &config, "fuzz");
  vigil::v1::EnrollBundle bundle;
  (void)vigil::ParseJsonStrict(text, &bundle, "fuzz");
  return 0;
}

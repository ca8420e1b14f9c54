// Policy, policy-set, agent-config and enrollment-bundle JSON come from files people edit, and
// policy sets arrive over the API as protobuf (ProposePolicyChange): strict parsing, the
// canonical form, resolution for a device and diffs must never crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "collectors/evaluate.h"
#include "collectors/policy.h"
#include "collectors/policy_set.h"
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
  // Resolution and diffs of a set, from its JSON and from the same bytes as protobuf.
  auto exercise = [](const vigil::v1::PolicySet& set) {
    (void)vigil::collectors::PolicySetVersion(set);
    for (const auto& tags :
         {std::vector<std::string>{}, std::vector<std::string>{"kiosk", "eng"}}) {
      auto resolved = vigil::collectors::ResolvePolicy(set, "linux", tags);
      if (resolved.status.ok()) {
        vigil::v1::Evidence e;
        e.mutable_usb_storage();
        (void)vigil::collectors::Evaluate("usb_storage", e, resolved.policy);
      }
    }
    (void)vigil::collectors::DiffPolicySets(vigil::v1::PolicySet(), set);
  };
  if (auto set = vigil::collectors::ParsePolicySet(text, "fuzz"); set.ok()) exercise(*set);
  vigil::v1::PolicySet wire;
  if (wire.ParseFromString(text)) {
    if (auto set = vigil::collectors::NormalizePolicySet(wire); set.ok()) exercise(*set);
  }
  vigil::v1::AgentConfig config;
  (void)vigil::ParseJsonStrict(text, &config, "fuzz");
  vigil::v1::EnrollBundle bundle;
  (void)vigil::ParseJsonStrict(text, &bundle, "fuzz");
  return 0;
}

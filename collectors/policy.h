// Loading, validating and naming compliance policies. Shared by agent and server.
#pragma once

#include <string>

#include "common/status.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::collectors {

// The policy used when none is given: the example policy of the product design.
v1::Policy DefaultPolicy();

// Parses policy JSON strictly (unknown fields rejected) and validates ranges; every error names
// the field, e.g. "screenLock.maxIdleSeconds: must be 1..86400, got 0".
Result<v1::Policy> ParsePolicy(const std::string& json, const std::string& what);
Result<v1::Policy> LoadPolicyFile(const std::string& path);
Status ValidatePolicy(const v1::Policy& policy);

// The policy's version: its `version` field, or "sha256:" and 12 hex digits of its canonical bytes.
std::string PolicyVersion(const v1::Policy& policy);

}  // namespace vigil::collectors

// evaluate(evidence, policy): the one pure function that turns evidence into verdicts.
// Linked by the agent (advisory verdicts) and the server (the verdicts that count), so a policy
// change re-judges the fleet's stored evidence without asking any device. No I/O, no clock.
#pragma once

#include <string>

#include "vigil/v1/attestation.pb.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::collectors {

struct Verdict {
  v1::CheckStatus status = v1::CHECK_STATUS_UNSPECIFIED;
  std::string reason;
};

// Judges one check. Evidence with collection_error is ERROR; a check the policy does not
// configure is NOT_APPLICABLE; unknown check ids are ERROR.
Verdict Evaluate(const std::string& check, const v1::Evidence& evidence, const v1::Policy& policy);

// Fills status and reason of every check in place.
void EvaluateAll(const v1::Policy& policy,
                 google::protobuf::RepeatedPtrField<v1::CheckResult>* checks);

// Per-check rules, called by Evaluate once the policy section is present.
Verdict EvaluateScreenLock(const v1::ScreenLockEvidence& e, const v1::ScreenLockPolicy& p);
Verdict EvaluatePasswordPolicy(const v1::PasswordPolicyEvidence& e, const v1::PasswordPolicy& p);
Verdict EvaluateUsbStorage(const v1::UsbStorageEvidence& e, const v1::UsbStoragePolicy& p);

}  // namespace vigil::collectors

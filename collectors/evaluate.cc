#include "collectors/evaluate.h"

#include "collectors/collectors.h"

namespace vigil::collectors {

Verdict Evaluate(const std::string& check, const v1::Evidence& evidence, const v1::Policy& policy) {
  if (!evidence.collection_error().empty()) {
    return {v1::ERROR, "could not collect evidence: " + evidence.collection_error()};
  }
  if (check == kScreenLock) {
    if (!policy.has_screen_lock())
      return {v1::NOT_APPLICABLE, "the policy does not require screen_lock"};
    if (!evidence.has_screen_lock()) return {v1::ERROR, "no screen_lock evidence"};
    return EvaluateScreenLock(evidence.screen_lock(), policy.screen_lock());
  }
  if (check == kPasswordPolicy) {
    if (!policy.has_password())
      return {v1::NOT_APPLICABLE, "the policy does not require password_policy"};
    if (!evidence.has_password_policy()) return {v1::ERROR, "no password_policy evidence"};
    return EvaluatePasswordPolicy(evidence.password_policy(), policy.password());
  }
  if (check == kUsbStorage) {
    if (!policy.has_usb_storage())
      return {v1::NOT_APPLICABLE, "the policy does not require usb_storage"};
    if (!evidence.has_usb_storage()) return {v1::ERROR, "no usb_storage evidence"};
    return EvaluateUsbStorage(evidence.usb_storage(), policy.usb_storage());
  }
  return {v1::ERROR, "unknown check '" + check + "'"};
}

void EvaluateAll(const v1::Policy& policy,
                 google::protobuf::RepeatedPtrField<v1::CheckResult>* checks) {
  for (auto& c : *checks) {
    Verdict v = Evaluate(c.check(), c.evidence(), policy);
    c.set_status(v.status);
    c.set_reason(std::move(v.reason));
  }
}

}  // namespace vigil::collectors

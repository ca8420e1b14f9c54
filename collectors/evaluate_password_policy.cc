#include "collectors/evaluate.h"

namespace vigil::collectors {

Verdict EvaluatePasswordPolicy(const v1::PasswordPolicyEvidence& e, const v1::PasswordPolicy& p) {
  return {v1::ERROR, "rule not implemented yet"};
}

}  // namespace vigil::collectors

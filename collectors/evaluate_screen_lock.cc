#include "collectors/evaluate.h"

namespace vigil::collectors {

Verdict EvaluateScreenLock(const v1::ScreenLockEvidence& e, const v1::ScreenLockPolicy& p) {
  return {v1::ERROR, "rule not implemented yet"};
}

}  // namespace vigil::collectors

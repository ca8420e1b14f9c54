#include "collectors/evaluate.h"

namespace vigil::collectors {

Verdict EvaluateUsbStorage(const v1::UsbStorageEvidence& e, const v1::UsbStoragePolicy& p) {
  return {v1::ERROR, "rule not implemented yet"};
}

}  // namespace vigil::collectors

#include "collectors/collectors.h"

namespace vigil::collectors {

v1::Evidence CollectPasswordPolicy(const SystemView& view) {
  v1::Evidence e;
  e.set_collection_error("collector not implemented yet");
  return e;
}

}  // namespace vigil::collectors

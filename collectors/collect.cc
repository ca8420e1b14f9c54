#include "collectors/collectors.h"
#include "collectors/utf8.h"

namespace vigil::collectors {

std::vector<v1::CheckResult> CollectAll(const SystemView& view) {
  using Fn = v1::Evidence (*)(const SystemView&);
  static const std::pair<const char*, Fn> kCollectors[] = {
      {kScreenLock, &CollectScreenLock},
      {kPasswordPolicy, &CollectPasswordPolicy},
      {kUsbStorage, &CollectUsbStorage},
  };
  std::vector<v1::CheckResult> out;
  for (const auto& [id, fn] : kCollectors) {
    v1::CheckResult r;
    r.set_check(id);
    try {
      *r.mutable_evidence() = fn(view);
    } catch (const std::exception& e) {
      // A collector bug must never turn into a missing (and so silently passing) check.
      r.mutable_evidence()->set_collection_error(std::string("collector failed: ") + e.what());
    }
    // Evidence quotes the machine's bytes (paths, config lines, user settings); one that is not
    // UTF-8 would make the whole signed attestation unparseable for the server.
    SanitizeStrings(&r);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace vigil::collectors

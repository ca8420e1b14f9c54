// The collectors: one free function per check, implemented once per platform (linux/,
// windows/, darwin/ hold files of the same names; CMake picks the folder). Each returns typed
// evidence only; judging is evaluate.h's job. A collector never fails silently: when it cannot
// read what it needs, it sets Evidence.collection_error (the check becomes ERROR) or records the
// problem in the evidence so the evaluator can refuse to PASS.
#pragma once

#include <string>
#include <vector>

#include "collectors/system_view.h"
#include "vigil/v1/attestation.pb.h"

namespace vigil::collectors {

inline constexpr const char* kScreenLock = "screen_lock";
inline constexpr const char* kPasswordPolicy = "password_policy";
inline constexpr const char* kUsbStorage = "usb_storage";

v1::Evidence CollectScreenLock(const SystemView& view);
v1::Evidence CollectPasswordPolicy(const SystemView& view);
v1::Evidence CollectUsbStorage(const SystemView& view);
v1::PlatformFacts CollectPlatform(const SystemView& view);

// Runs every collector; the returned checks carry evidence, with status and reason unset.
std::vector<v1::CheckResult> CollectAll(const SystemView& view);

}  // namespace vigil::collectors

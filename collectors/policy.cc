#include "collectors/policy.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "common/files.h"
#include "proto/json.h"
#include "proto/signing.h"

namespace vigil::collectors {
namespace {

Status Range(const char* field, uint64_t v, uint64_t lo, uint64_t hi) {
  if (v < lo || v > hi) {
    return Status::InvalidArgument(std::string(field) + ": must be " + std::to_string(lo) + ".." +
                                   std::to_string(hi) + ", got " + std::to_string(v));
  }
  return Status::Ok();
}

}  // namespace

v1::Policy DefaultPolicy() {
  v1::Policy p;
  p.mutable_screen_lock()->set_max_idle_seconds(900);
  p.mutable_screen_lock()->set_require_password(true);
  p.mutable_screen_lock()->set_max_lock_delay_seconds(5);
  p.mutable_password()->set_min_length(12);
  p.mutable_password()->set_min_classes(3);
  p.mutable_password()->set_max_age_days(365);
  p.mutable_password()->set_max_failed_attempts(10);
  p.mutable_usb_storage()->set_mode(v1::BLOCKED);
  p.set_checkin_window_seconds(3600);
  return p;
}

Status ValidatePolicy(const v1::Policy& p) {
  Status s;
  if (p.has_screen_lock()) {
    if (!(s = Range("screenLock.maxIdleSeconds", p.screen_lock().max_idle_seconds(), 1, 86400))
             .ok())
      return s;
    if (!(s = Range("screenLock.maxLockDelaySeconds", p.screen_lock().max_lock_delay_seconds(), 0,
                    3600))
             .ok())
      return s;
  }
  if (p.has_password()) {
    if (!(s = Range("password.minLength", p.password().min_length(), 0, 128)).ok()) return s;
    if (!(s = Range("password.minClasses", p.password().min_classes(), 0, 4)).ok()) return s;
    if (!(s = Range("password.maxAgeDays", p.password().max_age_days(), 0, 3650)).ok()) return s;
    if (!(s = Range("password.maxFailedAttempts", p.password().max_failed_attempts(), 0, 1000))
             .ok())
      return s;
  }
  if (p.has_usb_storage() && p.usb_storage().mode() == v1::USB_STORAGE_MODE_UNSPECIFIED) {
    return Status::InvalidArgument("usbStorage.mode: must be ALLOWED, BLOCKED or READ_ONLY");
  }
  if (p.has_screen_lock() && p.screen_lock().max_shell_timeout_seconds() != 0) {
    if (!(s = Range("screenLock.maxShellTimeoutSeconds",
                    p.screen_lock().max_shell_timeout_seconds(), 1, 86400))
             .ok()) {
      return s;
    }
  }
  for (const auto& id : p.usb_storage().allowed_devices()) {
    bool ok = id.size() == 9 && id[4] == ':';
    for (size_t i = 0; ok && i < id.size(); ++i) {
      if (i == 4) continue;
      ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    }
    if (!ok) {
      return Status::InvalidArgument("usbStorage.allowedDevices: '" + id +
                                     "' is not a lower-case vendor:product id like 0781:5581");
    }
  }
  if (p.usb_storage().allowed_devices_size() > 0 && p.usb_storage().mode() != v1::ALLOWED) {
    return Status::InvalidArgument("usbStorage.allowedDevices: only valid with mode ALLOWED");
  }
  if (p.checkin_window_seconds() != 0) {
    if (!(s = Range("checkinWindowSeconds", p.checkin_window_seconds(), 60, 2592000)).ok())
      return s;
  }
  if (p.version().size() > 128)
    return Status::InvalidArgument("version: longer than 128 characters");
  return Status::Ok();
}

Result<v1::Policy> ParsePolicy(const std::string& json, const std::string& what) {
  v1::Policy p;
  Status s = ParseJsonStrict(json, &p, what);
  if (!s.ok()) return s;
  s = ValidatePolicy(p);
  if (!s.ok()) return Status::InvalidArgument(what + ": " + s.message());
  if (p.checkin_window_seconds() == 0) p.set_checkin_window_seconds(3600);
  return p;
}

Result<v1::Policy> LoadPolicyFile(const std::string& path) {
  auto text = ReadWholeFile(path, 1u << 20);
  if (!text.ok()) return text.status();
  return ParsePolicy(*text, path);
}

std::string PolicyVersion(const v1::Policy& policy) {
  if (!policy.version().empty()) return policy.version();
  std::string bytes;
  google::protobuf::io::StringOutputStream sos(&bytes);
  {
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    policy.SerializeToCodedStream(&cos);
  }
  return "sha256:" + signing::Hex(signing::Sha256(bytes)).substr(0, 12);
}

}  // namespace vigil::collectors

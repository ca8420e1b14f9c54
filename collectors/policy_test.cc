#include "collectors/policy.h"

#include <doctest/doctest.h>

#include "collectors/evaluate.h"

namespace vigil::collectors {
namespace {

TEST_CASE("policy validation rejects out-of-range values, naming the field") {
  struct Case {
    const char* json;
    const char* field;  // nullptr = valid
  } cases[] = {
      {R"({"screenLock": {"maxIdleSeconds": 900, "requirePassword": true}})", nullptr},
      {R"({"screenLock": {"maxIdleSeconds": 0}})", "screenLock.maxIdleSeconds"},
      {R"({"screenLock": {"maxIdleSeconds": 100000}})", "screenLock.maxIdleSeconds"},
      {R"({"screenLock": {"maxIdleSeconds": 60, "maxLockDelaySeconds": 4000}})",
       "screenLock.maxLockDelaySeconds"},
      {R"({"password": {"minClasses": 5}})", "password.minClasses"},
      {R"({"password": {"minLength": 129}})", "password.minLength"},
      {R"({"usbStorage": {}})", "usbStorage.mode"},
      {R"({"checkinWindowSeconds": 5})", "checkinWindowSeconds"},
      {R"({"screenLock": {"maxIdleSeconds": 60}, "bogus": 1})", "bogus"},
      {R"({"password": {"minLength": -1}})", "min_length"},
      {R"({"usbStorage": {"mode": "READ_ONLY"}})", nullptr},
      {R"({"usbStorage": {"mode": "ALLOWED", "allowedDevices": ["0781:5581"]}})", nullptr},
      {R"({"usbStorage": {"mode": "ALLOWED", "allowedDevices": ["0781:558G"]}})",
       "usbStorage.allowedDevices"},
      {R"({"usbStorage": {"mode": "BLOCKED", "allowedDevices": ["0781:5581"]}})",
       "usbStorage.allowedDevices"},
      {R"({"screenLock": {"maxIdleSeconds": 60, "maxShellTimeoutSeconds": 90000}})",
       "screenLock.maxShellTimeoutSeconds"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    auto p = ParsePolicy(c.json, "policy.json");
    if (c.field == nullptr) {
      CHECK(p.ok());
    } else {
      REQUIRE(!p.ok());
      CHECK(p.status().message().find(c.field) != std::string::npos);
    }
  }
}

TEST_CASE("the default policy is valid and versions are stable digests") {
  CHECK(ValidatePolicy(DefaultPolicy()).ok());
  CHECK(PolicyVersion(DefaultPolicy()) == PolicyVersion(DefaultPolicy()));
  v1::Policy other = DefaultPolicy();
  other.mutable_screen_lock()->set_max_idle_seconds(300);
  CHECK(PolicyVersion(other) != PolicyVersion(DefaultPolicy()));
  other.set_version("2026-11 baseline");
  CHECK(PolicyVersion(other) == "2026-11 baseline");
}

TEST_CASE("evaluation: collection errors are ERROR, unconfigured checks NOT_APPLICABLE") {
  v1::Policy p;  // nothing configured
  v1::Evidence e;
  e.mutable_usb_storage();
  CHECK(Evaluate("usb_storage", e, p).status == v1::NOT_APPLICABLE);
  e.set_collection_error("boom");
  CHECK(Evaluate("usb_storage", e, DefaultPolicy()).status == v1::ERROR);
  CHECK(Evaluate("usb_storage", e, p).status == v1::ERROR);
  CHECK(Evaluate("no_such_check", v1::Evidence(), p).status == v1::ERROR);
  v1::Evidence wrong_kind;
  wrong_kind.mutable_screen_lock();
  CHECK(Evaluate("usb_storage", wrong_kind, DefaultPolicy()).status == v1::ERROR);
}

}  // namespace
}  // namespace vigil::collectors

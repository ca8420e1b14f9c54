#include "proto/json.h"

#include <doctest/doctest.h>

#include "vigil/v1/policy.pb.h"

namespace vigil {
namespace {

TEST_CASE("strict JSON parsing names unknown fields and rejects bad types") {
  v1::Policy p;
  Status s = ParseJsonStrict(R"({"screenLock": {"maxIdleSecond": 5}})", &p, "policy.json");
  REQUIRE(!s.ok());
  CHECK(s.message().find("maxIdleSecond") != std::string::npos);
  CHECK(s.message().find("policy.json") != std::string::npos);
  CHECK(!ParseJsonStrict(R"({"checkinWindowSeconds": "soon"})", &p, "p").ok());
  CHECK(!ParseJsonStrict("{", &p, "p").ok());
  CHECK(!ParseJsonStrict(R"({"usbStorage": {"mode": "MAYBE"}})", &p, "p").ok());
  CHECK(ParseJsonStrict(R"({"usbStorage": {"mode": "BLOCKED"}})", &p, "p").ok());
  CHECK(p.usb_storage().mode() == v1::BLOCKED);
}

}  // namespace
}  // namespace vigil

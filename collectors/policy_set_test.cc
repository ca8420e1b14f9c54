#include "collectors/policy_set.h"

#include <doctest/doctest.h>
#include <google/protobuf/util/message_differencer.h>

#include <string>
#include <vector>

#include "collectors/policy.h"
#include "proto/json.h"

namespace vigil::collectors {
namespace {

using Strings = std::vector<std::string>;

const char kDefault[] =
    R"("defaultPolicy": {"screenLock": {"maxIdleSeconds": 900, "requirePassword": true,
                                        "maxLockDelaySeconds": 5},
                         "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 365,
                                      "maxFailedAttempts": 10},
                         "usbStorage": {"mode": "BLOCKED"}, "checkinWindowSeconds": 3600})";

// A set with kDefault and the given overrides (a JSON array's contents).
std::string SetJson(const std::string& overrides) {
  return std::string("{") + kDefault + R"(, "overrides": [)" + overrides + "]}";
}

v1::PolicySet MustParse(const std::string& json) {
  auto set = ParsePolicySet(json, "set.json");
  INFO(set.status().message());
  REQUIRE(set.ok());
  return *set;
}

bool Same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST_CASE("policy set: parse errors name the override and the field path") {
  struct Case {
    std::string json;
    const char* error;  // a part of the message
  } cases[] = {
      {SetJson(R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"bogus": 1}}})"),
       "overrides[0] (kiosk): usbStorage.bogus: unknown field"},
      {SetJson(R"({"name": "kiosk", "tag": "kiosk", "policy": {"screenlock": {}}})"),
       "overrides[0] (kiosk): screenlock: unknown field"},
      {SetJson(R"({"name": "kiosk", "tag": "kiosk", "bogus": 1})"), "bogus"},
      {R"({"defaultPolicy": {"screenLock": {"bogus": 1}}})", "screen_lock) bogus"},
      {R"({"defaultPolicy": {}, "bogus": 1})", "bogus"},
      {SetJson(R"({"name": "k", "tag": "has space"})"), "overrides[0] (k): tag: 'has space'"},
      {SetJson(R"({"name": "k", "tag": "a/b"})"), "overrides[0] (k): tag:"},
      {SetJson(R"({"name": "k", "tag": "x"}, {"name": "k", "platform": "linux"})"),
       "overrides[1] (k): name: 'k' is used twice"},
      {SetJson(R"({"name": "k", "policy": {}})"), "overrides[0] (k): needs a platform, a tag"},
      {SetJson(R"({"name": "k", "platform": "Linux"})"), "overrides[0] (k): platform: 'Linux'"},
      {SetJson(R"({"name": "", "tag": "x"})"), "overrides[0]: name: ''"},
      {SetJson(R"({"name": "a b", "tag": "x"})"), "overrides[0] (a b): name: 'a b'"},
      // Valid alone as JSON, invalid once merged with the default (mode is BLOCKED).
      {SetJson(R"({"name": "k", "tag": "x",
                   "policy": {"usbStorage": {"allowedDevices": ["0781:5581"]}}})"),
       "overrides[0] (k): usbStorage.allowedDevices: only valid with mode ALLOWED"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"screenLock": {"maxIdleSeconds": 0}}})"),
       "overrides[0] (k): screenLock.maxIdleSeconds: must be 1..86400, got 0"},
      {R"({"defaultPolicy": {}, "overrides": [{"name": "k", "tag": "x",
           "policy": {"screenLock": {"maxLockDelaySeconds": 5}}}]})",
       "overrides[0] (k): screenLock.maxIdleSeconds: must be 1..86400"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"screenLock": {"maxIdleSeconds": "x"}}})"),
       "overrides[0] (k): screenLock.maxIdleSeconds: invalid value"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"password": {"minLength": -1}}})"),
       "overrides[0] (k): password.minLength: invalid value -1"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"usbStorage": {"mode": "OPEN"}}})"),
       "overrides[0] (k): usbStorage.mode: invalid value"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"screenLock": 5}})"),
       "overrides[0] (k): screenLock: must be an object"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"version": "mine"}})"),
       "overrides[0] (k): version: cannot be set by an override"},
      {SetJson(R"({"name": "k", "tag": "x",
                   "policy": {"password": {"maxAgeDays": 1, "max_age_days": 2}}})"),
       "overrides[0] (k): password.maxAgeDays: given twice"},
      {R"({"defaultPolicy": {"screenLock": {"maxIdleSeconds": 0}}})",
       "defaultPolicy: screenLock.maxIdleSeconds"},
      {R"({"defaultPolicy": {"usbStorage": {"mode": 99}}})",
       "defaultPolicy: usbStorage.mode: unknown value 99"},
      {SetJson(R"({"name": "k", "tag": "x", "policy": {"usbStorage": {"mode": 99}}})"),
       "overrides[0] (k): usbStorage.mode: unknown value 99"},
      {"[1, 2]", "must be a JSON object"},
      {"{", "set.json: "},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    auto set = ParsePolicySet(c.json, "set.json");
    REQUIRE(!set.ok());
    CAPTURE(set.status().message());
    CHECK(set.status().message().rfind("set.json: ", 0) == 0);
    CHECK(set.status().message().find(c.error) != std::string::npos);
  }

  // The whole message, in the documented shape.
  auto set = ParsePolicySet(SetJson(R"({"name": "a", "tag": "a"}, {"name": "b", "tag": "b"},
                                       {"name": "kiosk", "tag": "kiosk",
                                        "policy": {"usbStorage": {"mode": null}}})"),
                            "p.json");
  REQUIRE(!set.ok());
  CHECK(set.status().message() ==
        "p.json: overrides[2] (kiosk): usbStorage.mode: must be ALLOWED, BLOCKED or READ_ONLY");
}

TEST_CASE("policy set: at most 256 overrides") {
  auto overrides = [](int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      out += (i ? "," : "") + std::string(R"({"name": "o)") + std::to_string(i) +
             R"(", "tag": "t)" + std::to_string(i) + R"("})";
    }
    return out;
  };
  auto ok = ParsePolicySet(SetJson(overrides(256)), "set.json");
  CHECK(ok.ok());
  auto too_many = ParsePolicySet(SetJson(overrides(257)), "set.json");
  REQUIRE(!too_many.ok());
  CHECK(too_many.status().message() == "set.json: overrides: at most 256, got 257");
}

TEST_CASE("policy set: a plain Policy document is a set with only a default") {
  const std::string path = std::string(VIGIL_FIXTURES_DIR) + "/../../packaging/policy.json";
  auto from_file = LoadPolicySetFile(path);
  INFO(from_file.status().message());
  REQUIRE(from_file.ok());
  auto policy = LoadPolicyFile(path);
  REQUIRE(policy.ok());
  CHECK(Same(from_file->default_policy(), *policy));
  CHECK(from_file->overrides_size() == 0);

  auto empty = ParsePolicySet("{}", "empty.json");
  REQUIRE(empty.ok());
  CHECK(empty->default_policy().checkin_window_seconds() == 3600);

  // Errors of a plain policy read as they always did.
  auto bad = ParsePolicySet(R"({"screenLock": {"maxIdleSeconds": 0}})", "p.json");
  REQUIRE(!bad.ok());
  CHECK(bad.status().message() == "p.json: screenLock.maxIdleSeconds: must be 1..86400, got 0");
  auto unknown = ParsePolicySet(R"({"screenLock": {"maxIdleSeconds": 60}, "bogus": 1})", "p.json");
  REQUIRE(!unknown.ok());
  CHECK(unknown.status().message().find("bogus") != std::string::npos);
}

TEST_CASE("effective policy: platform, then tag, then both; ties in name order") {
  // Listed out of order on purpose: the application order does not depend on it.
  const v1::PolicySet set = MustParse(SetJson(R"(
      {"name": "linux-eng", "platform": "linux", "tag": "eng",
       "policy": {"screenLock": {"maxIdleSeconds": 500}}},
      {"name": "b-tag", "tag": "eng", "policy": {"screenLock": {"maxIdleSeconds": 700}}},
      {"name": "linux", "platform": "linux",
       "policy": {"screenLock": {"maxIdleSeconds": 800}, "password": {"minLength": 14}}},
      {"name": "a-tag", "tag": "team", "policy": {"screenLock": {"maxIdleSeconds": 600}}})"));
  struct Case {
    std::string os;
    Strings tags;
    uint32_t idle;
    Strings applied;
  } cases[] = {
      {"windows", {}, 900, {}},
      {"linux", {}, 800, {"linux"}},
      {"linux", {"team"}, 600, {"linux", "a-tag"}},
      {"linux", {"eng", "team"}, 500, {"linux", "a-tag", "b-tag", "linux-eng"}},
      {"linux", {"team", "eng"}, 500, {"linux", "a-tag", "b-tag", "linux-eng"}},
      {"windows", {"team", "eng"}, 700, {"a-tag", "b-tag"}},
      {"darwin", {"eng"}, 700, {"b-tag"}},
      {"", {"linux"}, 900, {}},  // a tag named like a platform is not the platform
  };
  const std::string set_version = PolicySetVersion(set);
  for (const auto& c : cases) {
    CAPTURE(c.os);
    CAPTURE(c.applied.size());
    ResolvedPolicy r = ResolvePolicy(set, c.os, c.tags);
    CHECK(r.status.ok());
    CHECK(r.policy.screen_lock().max_idle_seconds() == c.idle);
    CHECK(r.applied == c.applied);
    std::string version = set_version;
    for (const auto& name : c.applied) version += "+" + name;
    CHECK(r.policy.version() == version);
    CHECK(Same(EffectivePolicy(set, c.os, c.tags), r.policy));
  }
  ResolvedPolicy all = ResolvePolicy(set, "linux", {"eng", "team"});
  CHECK(all.policy.password().min_length() == 14);     // only "linux" set it
  CHECK(all.policy.screen_lock().require_password());  // from the default
  CHECK(all.origins ==
        std::map<std::string, std::string>{{"screenLock.maxIdleSeconds", "linux-eng"},
                                           {"password.minLength", "linux"}});
}

TEST_CASE("effective policy: an override sets 0, false and [], replaces lists, null clears") {
  const v1::PolicySet set = MustParse(R"({
      "defaultPolicy": {"screenLock": {"maxIdleSeconds": 900, "requirePassword": true},
                        "password": {"minLength": 12, "maxAgeDays": 365},
                        "usbStorage": {"mode": "ALLOWED",
                                       "allowedDevices": ["0781:5581", "0951:1666"]}},
      "overrides": [
        {"name": "zeros", "tag": "zeros",
         "policy": {"password": {"max_age_days": 0}, "screenLock": {"requirePassword": false},
                    "usbStorage": {"allowedDevices": []}}},
        {"name": "swap", "tag": "swap",
         "policy": {"usbStorage": {"allowedDevices": ["abcd:0001"]}}},
        {"name": "ro", "tag": "ro", "policy": {"usbStorage": {"mode": 3, "allowedDevices": null}}},
        {"name": "nolock", "tag": "nolock", "policy": {"screenLock": null}}
      ]})");

  v1::Policy zeros = EffectivePolicy(set, "linux", {"zeros"});
  CHECK(zeros.password().max_age_days() == 0);
  CHECK(zeros.password().min_length() == 12);
  CHECK(!zeros.screen_lock().require_password());
  CHECK(zeros.screen_lock().max_idle_seconds() == 900);
  CHECK(zeros.usb_storage().allowed_devices_size() == 0);
  CHECK(zeros.usb_storage().mode() == v1::ALLOWED);

  v1::Policy swap = EffectivePolicy(set, "linux", {"swap"});
  REQUIRE(swap.usb_storage().allowed_devices_size() == 1);
  CHECK(swap.usb_storage().allowed_devices(0) == "abcd:0001");

  ResolvedPolicy ro = ResolvePolicy(set, "linux", {"ro"});
  CHECK(ro.policy.usb_storage().mode() == v1::READ_ONLY);
  CHECK(ro.policy.usb_storage().allowed_devices_size() == 0);
  CHECK(ro.status.ok());

  ResolvedPolicy nolock = ResolvePolicy(set, "linux", {"nolock", "zeros"});
  // Name order: "nolock" clears screenLock, then "zeros" recreates it with only requirePassword,
  // which is not a valid section: each was valid alone, together they are reported.
  CHECK(nolock.applied == Strings{"nolock", "zeros"});
  CHECK(nolock.policy.has_screen_lock());
  CHECK(nolock.policy.screen_lock().max_idle_seconds() == 0);
  CHECK(nolock.status.message() ==
        "overrides nolock, zeros together: screenLock.maxIdleSeconds: must be 1..86400, got 0");
  CHECK(nolock.origins.at("screenLock") == "zeros");

  ResolvedPolicy cleared = ResolvePolicy(set, "linux", {"nolock"});
  CHECK(!cleared.policy.has_screen_lock());
  CHECK(cleared.status.ok());
  CHECK(cleared.origins == std::map<std::string, std::string>{{"screenLock", "nolock"}});

  // The check-in window is fleet-wide: from the default, and an override may not set it.
  CHECK(EffectivePolicy(set, "linux", {"zeros"}).checkin_window_seconds() == 3600);
  auto window = ParsePolicySet(
      R"({"overrides": [{"name": "w", "tag": "w", "policy": {"checkinWindowSeconds": 86400}}]})",
      "p.json");
  CHECK(window.status().message() ==
        "p.json: overrides[0] (w): checkinWindowSeconds: cannot be set by an override (the "
        "check-in window is fleet-wide: set it in defaultPolicy)");

  // Stored canonical: JSON names, enums by name.
  const auto& z = set.overrides(3).policy();  // sorted: nolock, ro, swap, zeros
  CHECK(set.overrides(3).name() == "zeros");
  CHECK(z.fields().at("password").struct_value().fields().at("maxAgeDays").number_value() == 0);
  const auto& ro_usb = set.overrides(1).policy().fields().at("usbStorage").struct_value();
  CHECK(ro_usb.fields().at("mode").string_value() == "READ_ONLY");
}

TEST_CASE("effective policy: a device matching nothing gets the default, with the set's version") {
  const v1::PolicySet set = MustParse(SetJson(
      R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
         {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 16}}})"));
  ResolvedPolicy r = ResolvePolicy(set, "windows", {"eng", "linux"});
  CHECK(r.applied.empty());
  CHECK(r.origins.empty());
  CHECK(r.status.ok());
  v1::Policy expected = set.default_policy();
  expected.set_version(PolicySetVersion(set));
  CHECK(Same(r.policy, expected));
  CHECK(r.policy.version().size() == 19);
}

TEST_CASE("effective policy: overrides valid alone but conflicting together are reported") {
  const v1::PolicySet set = MustParse(R"({
      "defaultPolicy": {"usbStorage": {"mode": "ALLOWED"}},
      "overrides": [
        {"name": "a", "tag": "x", "policy": {"usbStorage": {"mode": "BLOCKED"}}},
        {"name": "b", "tag": "y", "policy": {"usbStorage": {"allowedDevices": ["0781:5581"]}}}
      ]})");
  CHECK(ResolvePolicy(set, "linux", {"x"}).status.ok());
  CHECK(ResolvePolicy(set, "linux", {"y"}).status.ok());
  ResolvedPolicy both = ResolvePolicy(set, "linux", {"x", "y"});
  REQUIRE(!both.status.ok());
  CHECK(both.status.message() ==
        "overrides a, b together: usbStorage.allowedDevices: only valid with mode ALLOWED");
}

TEST_CASE("effective policy: a long list of applied names is hashed into the version") {
  std::string overrides;
  const std::string long_name(60, 'n');
  for (char c : std::string("abc")) {
    overrides += std::string(overrides.empty() ? "" : ",") + R"({"name": ")" + c + long_name +
                 R"(", "tag": "t", "policy": {}})";
  }
  const v1::PolicySet set = MustParse(SetJson(overrides));
  ResolvedPolicy r = ResolvePolicy(set, "linux", {"t"});
  CHECK(r.applied.size() == 3);
  CHECK(r.policy.version().size() <= 128);
  CHECK(r.policy.version().rfind(PolicySetVersion(set) + "+~", 0) == 0);
  CHECK(r.status.ok());
  // Two of them still fit.
  ResolvedPolicy two = ResolvePolicy(MustParse(SetJson(R"({"name": "a", "tag": "t"},
                                                           {"name": "b", "tag": "t"})")),
                                     "linux", {"t"});
  CHECK(two.policy.version().size() == 19 + 4);
}

TEST_CASE("policy set versions: stable for the same set, different after any change") {
  const std::string base = SetJson(
      R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
         {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 16}}})");
  const std::string version = PolicySetVersion(MustParse(base));
  CHECK(version.rfind("sha256:", 0) == 0);
  CHECK(version.size() == 19);
  CHECK(PolicySetVersion(MustParse(base)) == version);

  // Other spellings of the same set: the canonical form, and so the version, is the same.
  const std::string same[] = {
      SetJson(R"({"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 16}}},
                 {"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": 3}}})"),
      SetJson(
          R"({"name": "kiosk", "tag": "kiosk", "policy": {"usb_storage": {"mode": "READ_ONLY"}}},
                 {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": "16"}}})"),
  };
  for (const auto& json : same) {
    CAPTURE(json);
    CHECK(PolicySetVersion(MustParse(json)) == version);
  }

  const std::string changed[] = {
      SetJson(R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "BLOCKED"}}},
                 {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 16}}})"),
      SetJson(
          R"({"name": "kiosk", "tag": "kiosk2", "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
                 {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 16}}})"),
      SetJson(R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
                 {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 15}}})"),
      SetJson(R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
                 {"name": "linux", "platform": "linux", "policy": {"password": {"minLength": 16}}},
                 {"name": "eng", "tag": "eng"})"),
      SetJson(R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
                 {"name": "linux", "platform": "linux",
                  "policy": {"password": {"minLength": 16, "maxAgeDays": 365}}})"),
      SetJson(
          R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "READ_ONLY"}}})"),
  };
  for (const auto& json : changed) {
    CAPTURE(json);
    CHECK(PolicySetVersion(MustParse(json)) != version);
  }
  // Printed as JSON (what a store or vigilctl shows) and read back: the same set.
  CHECK(PolicySetVersion(MustParse(ToJson(MustParse(base)))) == version);
  CHECK(PolicySetVersion(MustParse(ToJson(MustParse(base), false, true))) == version);

  v1::PolicySet described = MustParse(base);
  described.set_description("winter baseline");
  CHECK(PolicySetVersion(described) != version);
  v1::PolicySet stricter = MustParse(base);
  stricter.mutable_default_policy()->mutable_screen_lock()->set_max_idle_seconds(600);
  CHECK(PolicySetVersion(stricter) != version);
}

TEST_CASE("policy set diff: changes, additions, removals; empty when equal") {
  const v1::PolicySet a = MustParse(SetJson(
      R"({"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "BLOCKED"}}},
         {"name": "eng", "platform": "linux", "tag": "eng",
          "policy": {"screenLock": {"maxIdleSeconds": 1800}}},
         {"name": "lab", "tag": "lab", "policy": {"password": {"maxAgeDays": 0}}})"));
  CHECK(DiffPolicySets(a, a).empty());
  CHECK(DiffPolicySets(
            a, MustParse(SetJson(
                   R"({"name": "lab", "tag": "lab", "policy": {"password": {"max_age_days": 0}}},
         {"name": "eng", "platform": "linux", "tag": "eng",
          "policy": {"screenLock": {"maxIdleSeconds": 1800}}},
         {"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": 2}}})")))
            .empty());

  v1::PolicySet b = MustParse(R"({
      "description": "spring",
      "defaultPolicy": {"screenLock": {"maxIdleSeconds": 600, "requirePassword": true,
                                       "maxLockDelaySeconds": 5},
                        "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 0,
                                     "maxFailedAttempts": 10},
                        "checkinWindowSeconds": 3600},
      "overrides": [
        {"name": "kiosk", "platform": "linux", "tag": "kiosk",
         "policy": {"usbStorage": {"mode": "READ_ONLY"}}},
        {"name": "lab", "tag": "lab", "policy": {"password": {"maxAgeDays": 0}}},
        {"name": "new", "tag": "new", "policy": {"password": {"minLength": 16}}}
      ]})");
  CHECK(DiffPolicySets(a, b) ==
        Strings{
            R"(description: "" -> "spring")",
            "default.screenLock.maxIdleSeconds: 900 -> 600",
            "default.password.maxAgeDays: 365 -> 0",
            R"(default.usbStorage: {"mode":"BLOCKED","allowedDevices":[]} -> (not set))",
            "overrides[eng]: removed (platform linux, tag eng)",
            R"(overrides[eng].screenLock: {"maxIdleSeconds":1800} -> (not set))",
            R"(overrides[kiosk].platform: "" -> "linux")",
            "overrides[kiosk].usbStorage.mode: BLOCKED -> READ_ONLY",
            "overrides[new]: added (tag new)",
            R"(overrides[new].password: (not set) -> {"minLength":16})",
        });
  // And back: every line reversed.
  CHECK(DiffPolicySets(b, a).size() == DiffPolicySets(a, b).size());
  CHECK(DiffPolicySets(b, a)[1] == "default.screenLock.maxIdleSeconds: 600 -> 900");

  // A key an override stops setting, and a section it starts clearing.
  v1::PolicySet c = a;
  (*c.mutable_overrides(1)->mutable_policy()->mutable_fields())["usbStorage"].set_null_value(
      google::protobuf::NULL_VALUE);
  c.mutable_overrides(2)->mutable_policy()->mutable_fields()->erase("password");
  CHECK(DiffPolicySets(a, c) == Strings{
                                    R"(overrides[kiosk].usbStorage: {"mode":"BLOCKED"} -> null)",
                                    R"(overrides[lab].password: {"maxAgeDays":0} -> (not set))",
                                });
}

}  // namespace
}  // namespace vigil::collectors

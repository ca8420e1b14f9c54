// Policy scopes: a default policy plus overrides by platform and by device tag
// (vigil.v1.PolicySet), the effective policy of one device, the set's version, and a readable diff
// of two sets. Shared by agent, server and vigilctl. Pure functions over values; thread-compatible.
// The format, precedence and version rules are documented for people in docs/policy.md.
//
// An override's `policy` is a JSON merge patch (RFC 7396) over the default policy, kept as a
// google.protobuf.Struct so that "set to 0 / false / []" differs from "not given": objects merge,
// values and lists replace, null clears (a section cleared is not required: NOT_APPLICABLE).
//
// Precedence: matching overrides apply in three groups, each in name order (byte-wise), later
// wins: (1) platform only, (2) tag only, (3) platform and tag. So "linux + kiosk" beats "kiosk"
// beats "linux"; between two tag overrides a device carries both of, the later name wins.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::collectors {

inline constexpr int kMaxPolicyOverrides = 256;

// Parses a PolicySet strictly (unknown fields are errors naming their path) and returns it in
// canonical form (see NormalizePolicySet). A plain Policy document (one with none of
// `defaultPolicy`, `overrides`, `description`) is accepted too and becomes a set with only a
// default. Errors start with `what`, and name the override: "p.json: overrides[2] (kiosk):
// usbStorage.mode: must be ALLOWED, BLOCKED or READ_ONLY".
Result<v1::PolicySet> ParsePolicySet(const std::string& json, const std::string& what);
Result<v1::PolicySet> LoadPolicySetFile(const std::string& path);

// Validates a set built in code or received over RPC and returns its canonical form, the one
// versions are computed from: overrides sorted by name; override keys in lowerCamelCase, enums
// as names, numbers as numbers; a default checkinWindowSeconds of 0 made 3600. Checks: the
// default passes ValidatePolicy; at most kMaxPolicyOverrides overrides; names unique, 1..64 of
// [A-Za-z0-9._-]; platform 1..32 of [a-z0-9_]; tag 1..64 of [A-Za-z0-9._:=-]; at least one of
// platform and tag; the override names only Policy fields (not `version`) with values of the
// right type; and default + that override alone passes ValidatePolicy. Enum numbers no
// UsbStorageMode (etc.) defines, such as "mode": 99, are refused everywhere in the set.
Result<v1::PolicySet> NormalizePolicySet(const v1::PolicySet& set);

// "sha256:" and 12 hex digits of the set's deterministic serialization (like PolicyVersion, but
// a `version` label in the default policy does not replace the digest: it is hashed with the
// rest). Meaningful for the canonical form: two spellings of one set then share a version.
std::string PolicySetVersion(const v1::PolicySet& set);

// The effective policy of one device and where its values came from.
struct ResolvedPolicy {
  // Default merged with every matching override. `version` is PolicySetVersion(set), plus
  // "+name" for each override applied, in order ("sha256:0123456789ab+linux+kiosk"); when that
  // would exceed 128 characters, "+~" and 12 hex digits of the joined names replace the names.
  // A checkinWindowSeconds of 0 becomes 3600.
  v1::Policy policy;
  // Names of the overrides applied, in the order applied.
  std::vector<std::string> applied;
  // JSON path ("usbStorage.mode", or a section such as "screenLock" an override created or
  // cleared) -> the override that last set it. Paths not listed come from the default.
  std::map<std::string, std::string> origins;
  // OK, or why the merge fails ValidatePolicy. Each override is validated alone against the
  // default, but some together can still conflict (one clears usbStorage, a later one sets only
  // its allowedDevices): the device's checks must then be ERROR with this reason.
  Status status;
};

// Matching: an override applies when its platform (if set) equals `os` (PlatformFacts.os) and
// the device carries its tag (if set). Expects a set that passed NormalizePolicySet.
ResolvedPolicy ResolvePolicy(const v1::PolicySet& set, const std::string& os,
                             const std::vector<std::string>& tags);
// ResolvePolicy(...).policy.
v1::Policy EffectivePolicy(const v1::PolicySet& set, const std::string& os,
                           const std::vector<std::string>& tags);

// Readable, deterministic differences from `a` to `b`, one per line, fields in their JSON
// spelling; empty when equal. Lines come in this order: description, default policy (fields in
// declaration order), then overrides by name:
//   description: "old" -> "new"
//   default.screenLock.maxIdleSeconds: 900 -> 600
//   default.screenLock: (not set) -> {"maxIdleSeconds":900,...}
//   overrides[kiosk]: added (tag kiosk)          followed by its fields, "(not set) -> value"
//   overrides[eng]: removed (platform linux, tag eng)   followed by "value -> (not set)"
//   overrides[kiosk].tag: "kiosk" -> "kiosk-2"
//   overrides[kiosk].usbStorage.mode: BLOCKED -> READ_ONLY
// Generic over the Policy descriptor: new Policy fields are covered without changes here.
std::vector<std::string> DiffPolicySets(const v1::PolicySet& a, const v1::PolicySet& b);

}  // namespace vigil::collectors

// Who may do what: enroll secrets (what agents present to register) and API tokens (what the
// security team's tools present), both created here, shown once and stored only as SHA-256;
// the roles a token can carry and what each allows.
//
// A credential string is PREFIX + ID + "_" + SECRET: "vgs_" for enroll secrets, "vgt_" for
// tokens, ID 12 hex digits (public, for lookup and revocation), SECRET 32 random bytes in
// base64url. Checking looks the ID up and compares SHA-256 digests with CRYPTO_memcmp, so the
// time taken does not depend on how much of a guess was right. The secrets are 256-bit random,
// so a fast hash is enough (no password-stretching needed). Thread-safe.
#pragma once

#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "server/store.h"

namespace vigil::server {

enum class Role { kViewer = 1, kAdmin = 2, kApprover = 3 };

enum class Permission {
  kReadFleet,      // devices, summary, stats: every role
  kManageDevices,  // approve, revoke: admin
  kReadAudit,      // the audit log: admin, approver
  kProposeChange,  // propose, apply and roll back policy changes; request exceptions: admin
  kApprove,        // approve policy changes and exceptions: approver
  kDecide,         // reject changes and exceptions, revoke exceptions: admin, approver
};

bool RoleAllows(Role role, Permission permission);
Result<Role> ParseRole(const std::string& name);  // "viewer", "admin", "approver"
std::string RoleName(Role role);

// The caller a token authenticated.
struct Principal {
  std::string token_id;
  std::string name;
  Role role = Role::kViewer;
  std::string Actor() const { return "token:" + name + " (" + RoleName(role) + ")"; }
};

// The person behind an actor, for "approved by someone other than the requester": a token's
// name up to its first '+' (one person's tokens are named "alice" and "alice+approver"), the
// whole actor string for anything else. Compared case-insensitively.
std::string PersonOf(const std::string& actor);

class Credentials {
 public:
  Credentials(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Creates a credential and returns the string to hand out; only its hash is kept, so it cannot
  // be shown again. ttl_ms == 0: never expires. Names: 1..64 of [A-Za-z0-9._@+-].
  Result<std::string> Create(CredentialKind kind, const std::string& name, int role, int64_t ttl_ms,
                             const std::string& actor);
  Status Revoke(CredentialKind kind, const std::string& id_or_name, const std::string& actor);

  // Checks a presented string. Unauthenticated (malformed, unknown, wrong) or PermissionDenied
  // (expired, revoked) with a message that never repeats the presented string.
  Result<CredentialRecord> Check(CredentialKind kind, const std::string& presented) const;

  // For tokens: the principal, or the Check error.
  Result<Principal> Authenticate(const std::string& token) const;

 private:
  Store& store_;
  const Clock& clock_;
};

// Parses "90d", "12h", "30m", "3600s" or "0"/"never" into milliseconds.
Result<int64_t> ParseDuration(const std::string& text);

}  // namespace vigil::server

#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cctype>
#include <charconv>
#include <string_view>

#include "proto/signing.h"

namespace vigil::server {
namespace {

constexpr size_t kIdLength = 12;

const char* Prefix(CredentialKind kind) {
  return kind == CredentialKind::kEnrollSecret ? "vgs_" : "vgt_";
}

const char* KindName(CredentialKind kind) {
  return kind == CredentialKind::kEnrollSecret ? "enroll secret" : "token";
}

std::string Base64Url(const unsigned char* p, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | p[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-' || c == '+';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool RoleAllows(Role role, Permission permission) {
  switch (permission) {
    case Permission::kReadFleet:
      return true;
    case Permission::kManageDevices:
      return role == Role::kAdmin;
    case Permission::kReadAudit:
    case Permission::kDecide:
      return role == Role::kAdmin || role == Role::kApprover;
    case Permission::kProposeChange:
      return role == Role::kAdmin;
    case Permission::kApprove:
      return role == Role::kApprover;
  }
  return false;
}

std::string PersonOf(const std::string& actor) {
  std::string person = actor;
  constexpr std::string_view kToken = "token:";
  if (actor.compare(0, kToken.size(), kToken) == 0) {
    size_t end = actor.find(' ', kToken.size());
    person = actor.substr(kToken.size(), end == std::string::npos ? end : end - kToken.size());
    size_t plus = person.find('+');
    if (plus != std::string::npos) person.resize(plus);
  }
  for (char& c : person) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return person;
}

Result<Role> ParseRole(const std::string& name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "admin") return Role::kAdmin;
  if (name == "approver") return Role::kApprover;
  return Status::InvalidArgument("role: must be viewer, admin or approver, got '" + name + "'");
}

std::string RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kAdmin:
      return "admin";
    case Role::kApprover:
      return "approver";
  }
  return "unknown";
}

Result<int64_t> ParseDuration(const std::string& text) {
  if (text == "0" || text == "never") return int64_t{0};
  if (text.size() < 2) return Status::InvalidArgument("duration: expected e.g. 90d, 12h, 30m");
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
  if (ec != std::errc() || p != text.data() + text.size() - 1 || n == 0 || n > 3650ull * 86400) {
    return Status::InvalidArgument("duration '" + text + "': expected e.g. 90d, 12h, 30m, 600s");
  }
  int64_t unit = 0;
  switch (text.back()) {
    case 'd':
      unit = 86400000;
      break;
    case 'h':
      unit = 3600000;
      break;
    case 'm':
      unit = 60000;
      break;
    case 's':
      unit = 1000;
      break;
    default:
      return Status::InvalidArgument("duration '" + text + "': unit must be d, h, m or s");
  }
  int64_t ms = static_cast<int64_t>(n) * unit;
  if (ms > 3650LL * 86400000) return Status::InvalidArgument("duration '" + text + "': too long");
  return ms;
}

Result<std::string> Credentials::Create(CredentialKind kind, const std::string& name, int role,
                                        int64_t ttl_ms, const std::string& actor) {
  if (!ValidName(name)) {
    return Status::InvalidArgument("name: 1..64 characters of A-Z a-z 0-9 . _ @ -, got '" + name +
                                   "'");
  }
  unsigned char id_bytes[kIdLength / 2];
  unsigned char secret[32];
  if (RAND_bytes(id_bytes, sizeof id_bytes) != 1 || RAND_bytes(secret, sizeof secret) != 1) {
    return Status::Internal("the system random generator failed");
  }
  CredentialRecord c;
  c.kind = kind;
  c.id = signing::Hex(std::string_view(reinterpret_cast<char*>(id_bytes), sizeof id_bytes));
  c.name = name;
  c.role = role;
  std::string presented = Prefix(kind) + c.id + "_" + Base64Url(secret, sizeof secret);
  OPENSSL_cleanse(secret, sizeof secret);
  c.hash = signing::Sha256(presented);
  c.created_at_ms = clock_.NowMillis();
  c.expires_at_ms = ttl_ms > 0 ? c.created_at_ms + ttl_ms : 0;
  AuditRecord audit{
      c.created_at_ms,
      actor,
      kind == CredentialKind::kToken ? "token.create" : "enroll_secret.create",
      c.id,
      "name '" + name + "'" +
          (kind == CredentialKind::kToken ? ", role " + RoleName(static_cast<Role>(role))
                                          : std::string()) +
          (ttl_ms > 0 ? ", expires in " + std::to_string(ttl_ms / 1000) + " s" : ", never expires"),
      true};
  if (Status s = store_.InsertCredential(c, audit); !s.ok()) return s;
  return presented;
}

Status Credentials::Revoke(CredentialKind kind, const std::string& id_or_name,
                           const std::string& actor) {
  int64_t now = clock_.NowMillis();
  AuditRecord audit{
      now,        actor, kind == CredentialKind::kToken ? "token.revoke" : "enroll_secret.revoke",
      id_or_name, "",    true};
  return store_.RevokeCredential(kind, id_or_name, now, audit);
}

Result<CredentialRecord> Credentials::Check(CredentialKind kind,
                                            const std::string& presented) const {
  std::string prefix = Prefix(kind);
  std::string what = KindName(kind);
  if (presented.size() < prefix.size() + kIdLength + 2 || presented.size() > 128 ||
      presented.compare(0, prefix.size(), prefix) != 0 ||
      presented[prefix.size() + kIdLength] != '_') {
    return Status::Unauthenticated("malformed " + what + " (expected " + prefix + "...)");
  }
  std::string id = presented.substr(prefix.size(), kIdLength);
  auto found = store_.FindCredential(kind, id);
  if (!found.ok()) return found.status();
  // Hash even when the id is unknown so both paths cost the same.
  std::string digest = signing::Sha256(presented);
  std::string expected = found->has_value() ? (*found)->hash : std::string(32, '\0');
  bool match = expected.size() == digest.size() &&
               CRYPTO_memcmp(expected.data(), digest.data(), digest.size()) == 0;
  if (!found->has_value() || !match) return Status::Unauthenticated("invalid " + what);
  const CredentialRecord& c = **found;
  if (c.revoked_at_ms != 0) {
    return Status::PermissionDenied(what + " '" + c.name + "' was revoked");
  }
  if (c.expires_at_ms != 0 && clock_.NowMillis() >= c.expires_at_ms) {
    return Status::PermissionDenied(what + " '" + c.name + "' has expired");
  }
  return c;
}

Result<Principal> Credentials::Authenticate(const std::string& token) const {
  auto c = Check(CredentialKind::kToken, token);
  if (!c.ok()) return c.status();
  Principal p;
  p.token_id = c->id;
  p.name = c->name;
  if (c->role < 1 || c->role > 3) return Status::Internal("token with an unknown role");
  p.role = static_cast<Role>(c->role);
  return p;
}

}  // namespace vigil::server

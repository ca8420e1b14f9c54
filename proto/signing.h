// Device keys and attestation signatures (Ed25519, OpenSSL 3).
//
// The signed bytes are kSignatureDomain ("vigil.attestation.v1" and a NUL byte) followed by the
// exact serialized Attestation carried in SignedAttestation.attestation; the verifier checks
// those bytes and only then parses them. The key id is SHA-256 of the raw 32-byte public key.
// DeviceKey is immutable after creation and safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "vigil/v1/attestation.pb.h"

namespace vigil::signing {

inline constexpr std::string_view kSignatureDomain{"vigil.attestation.v1\0", 21};
// Key rotation statements (KeyRotation) are signed over this prefix and their exact bytes.
inline constexpr std::string_view kRotationDomain{"vigil.key-rotation.v1\0", 22};
inline constexpr size_t kPublicKeySize = 32;
inline constexpr size_t kSignatureSize = 64;

class DeviceKey {
 public:
  static Result<DeviceKey> Generate();
  // Parses a PKCS#8 PEM Ed25519 private key.
  static Result<DeviceKey> FromPem(const std::string& pem);

  Result<std::string> ToPem() const;                            // PKCS#8 PEM of the private key
  const std::string& PublicKey() const { return public_key_; }  // raw 32 bytes
  std::string KeyId() const;                                    // SHA-256 of PublicKey()
  Result<std::string> Sign(std::string_view message) const;

 private:
  struct Impl;
  explicit DeviceKey(std::shared_ptr<Impl> impl, std::string pub)
      : impl_(std::move(impl)), public_key_(std::move(pub)) {}
  std::shared_ptr<Impl> impl_;
  std::string public_key_;
};

std::string Sha256(std::string_view data);
std::string KeyIdOf(std::string_view raw_public_key);
std::string Hex(std::string_view bytes);

// Checks an Ed25519 signature by a raw 32-byte public key over `message`.
Status Verify(std::string_view raw_public_key, std::string_view message,
              std::string_view signature);

// Serializes and signs an attestation.
Result<v1::SignedAttestation> SignAttestation(const v1::Attestation& attestation,
                                              const DeviceKey& key);

// Verifies `signed_att` against `raw_public_key` (checking the key id too) and parses it.
Result<v1::Attestation> VerifyAttestation(const v1::SignedAttestation& signed_att,
                                          std::string_view raw_public_key);

}  // namespace vigil::signing

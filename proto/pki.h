// The fleet's small PKI (OpenSSL 3): a self-signed CA, the server's TLS certificate, and client
// certificates for enrolled devices.
//
// The server owns the CA (ECDSA P-256, SHA-256) and issues itself a server certificate. An agent
// enrolling builds a PKCS#10 request (MakeCsr) signed by its Ed25519 device key; the server checks
// that request against the device key it is enrolling (CheckCsr: the CSR is untrusted input) and
// issues a client certificate whose subject CN is the device id (IssueClientCert), which
// CertCommonName later reads back from the TLS peer certificate. Keys travel as unencrypted PKCS#8
// PEM, certificates and requests as PEM. Times are Unix seconds passed in by the caller (the
// injected clock), never read here; validity starts 5 minutes before `now_s` to absorb clock skew.
// Every failure is a Status (InvalidArgument for bad input, Internal for OpenSSL failures); no
// OpenSSL error is left on the calling thread's error queue. Stateless and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vigil::pki {

// Certificate requests larger than this are rejected before parsing.
inline constexpr size_t kMaxCsrBytes = 8 * 1024;

struct KeyAndCert {
  std::string key_pem;   // PKCS#8 PEM, unencrypted
  std::string cert_pem;  // X.509 PEM
};

// A self-signed CA: ECDSA P-256 key, subject CN=common_name, O=Vigil, basicConstraints
// CA:TRUE, pathlen:0 and keyUsage keyCertSign, cRLSign (both critical), subjectKeyIdentifier,
// valid [now_s - 300, now_s + days * 86400], random 128-bit serial, SHA-256.
Result<KeyAndCert> CreateCa(const std::string& common_name, int64_t now_s, int days);

// A TLS server certificate signed by `ca` for a fresh P-256 key. Each entry of `sans` becomes an
// IP subjectAltName if it parses as IPv4 or IPv6 (brackets allowed: "[::1]"), else a DNS name
// (letters, digits, '-', '.', '_' and '*' only); the CN is the first entry. EKU serverAuth,
// keyUsage digitalSignature. Empty `sans` is InvalidArgument.
Result<KeyAndCert> IssueServerCert(const KeyAndCert& ca, const std::vector<std::string>& sans,
                                   int64_t now_s, int days);

// Agent side: a PEM PKCS#10 request with subject CN=common_name for the Ed25519 private key in
// `private_key_pem` (PKCS#8 PEM, as signing::DeviceKey::ToPem gives), signed by that key.
Result<std::string> MakeCsr(const std::string& private_key_pem, const std::string& common_name);

// Server side, for untrusted input: `csr_pem` must be one PEM certificate request of at most
// kMaxCsrBytes (only whitespace may follow it) whose key is Ed25519, whose self-signature
// verifies, and whose raw public key equals `expected_public_key` (32 bytes). The subject is
// ignored. Failures are InvalidArgument with messages starting "csr: ".
Status CheckCsr(const std::string& csr_pem, std::string_view expected_public_key);

// A client certificate for the public key of `csr_pem` (re-parsed and re-verified, but the key
// is not compared: call CheckCsr first). Subject CN=device_id, O=Vigil device (the request's
// subject is ignored), EKU clientAuth, keyUsage digitalSignature, basicConstraints CA:FALSE,
// valid [now_s - 300, now_s + days * 86400], random serial, signed by `ca` with SHA-256.
Result<std::string> IssueClientCert(const KeyAndCert& ca, const std::string& csr_pem,
                                    const std::string& device_id, int64_t now_s, int days);

// The subject CN of a PEM certificate. InvalidArgument when it does not parse, or has no CN or
// more than one.
Result<std::string> CertCommonName(const std::string& cert_pem);

// OK when `cert_pem` chains to `ca_cert_pem` (the only trust anchor) at time `now_s`, with
// X.509 strict checks; else InvalidArgument with OpenSSL's reason.
// The raw 32-byte Ed25519 public key of a certificate (a device's client certificate).
Result<std::string> CertEd25519PublicKey(const std::string& cert_pem);

// A certificate's notAfter, in seconds since the Unix epoch.
Result<int64_t> CertNotAfter(const std::string& cert_pem);

Status VerifyCertChain(const std::string& cert_pem, const std::string& ca_cert_pem, int64_t now_s);

}  // namespace vigil::pki

#include "proto/pki.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

namespace vigil::pki {
namespace {

// Certificates start this long before "now" so a peer whose clock is slightly behind accepts them.
constexpr int64_t kBackdateSeconds = 300;
constexpr int kMaxDays = 36500;
// RFC 5280 upper bound for a CN (OpenSSL enforces it too; checking first gives a clear message).
constexpr size_t kMaxCommonName = 64;
constexpr size_t kMaxDnsName = 253;

template <auto kFree>
struct Freer {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};
template <typename T, auto kFree>
using Owned = std::unique_ptr<T, Freer<kFree>>;

using Bio = Owned<BIO, BIO_free>;
using Bignum = Owned<BIGNUM, BN_free>;
using Cert = Owned<X509, X509_free>;
using Extension = Owned<X509_EXTENSION, X509_EXTENSION_free>;
using GeneralName = Owned<GENERAL_NAME, GENERAL_NAME_free>;
using GeneralNames = Owned<GENERAL_NAMES, GENERAL_NAMES_free>;
using Key = Owned<EVP_PKEY, EVP_PKEY_free>;
using Name = Owned<X509_NAME, X509_NAME_free>;
using Request = Owned<X509_REQ, X509_REQ_free>;
using Store = Owned<X509_STORE, X509_STORE_free>;
using StoreCtx = Owned<X509_STORE_CTX, X509_STORE_CTX_free>;

struct OpenSslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};
template <typename T>
using OpenSslBuffer = std::unique_ptr<T, OpenSslFree>;

// OpenSSL reports failures on a per-thread queue that other users of the thread (gRPC's TLS)
// read too; every public function starts and ends with it empty.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_clear_error(); }
  ~ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// Drains the error queue into one line.
std::string DrainErrors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(e));
  }
  return out;
}

Status Failed(const std::string& what) {
  std::string detail = DrainErrors();
  return Status::Internal("pki: " + what + (detail.empty() ? "" : ": " + detail));
}

Result<Bio> ReadBio(std::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) return Status::InvalidArgument("pki: too large");
  Bio bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (bio == nullptr) return Failed("BIO_new_mem_buf");
  return bio;
}

// Encodes with `write` (a PEM_write_bio_* call) into a string.
template <typename Write>
Result<std::string> WritePem(Write write) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || write(bio.get()) != 1) return Failed("PEM encoding failed");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return Failed("PEM encoding failed");
  return std::string(data, static_cast<size_t>(len));
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The DER body of the first PEM block in `pem`, for untrusted input. Rejects a block whose label
// is not in `labels`, one with headers (encrypted PEM would otherwise prompt for a password),
// and anything but whitespace after the block, all as InvalidArgument(`not_pem`).
Result<std::string> PemBody(const std::string& pem, std::initializer_list<std::string_view> labels,
                            const std::string& not_pem) {
  auto bio = ReadBio(pem);
  if (!bio.ok()) return bio.status();
  char* raw_name = nullptr;
  char* raw_header = nullptr;
  unsigned char* raw_data = nullptr;
  long len = 0;
  int rc = PEM_read_bio(bio->get(), &raw_name, &raw_header, &raw_data, &len);
  OpenSslBuffer<char> name(raw_name);
  OpenSslBuffer<char> header(raw_header);
  OpenSslBuffer<unsigned char> data(raw_data);
  if (rc != 1 || len <= 0) return Status::InvalidArgument(not_pem);
  bool known = false;
  for (std::string_view label : labels) known = known || label == name.get();
  if (!known || header == nullptr || header.get()[0] != '\0') {
    return Status::InvalidArgument(not_pem);
  }
  char rest[256];
  for (int n = BIO_read(bio->get(), rest, sizeof(rest)); n > 0;
       n = BIO_read(bio->get(), rest, sizeof(rest))) {
    for (int i = 0; i < n; ++i) {
      if (!IsSpace(rest[i])) return Status::InvalidArgument(not_pem);
    }
  }
  return std::string(reinterpret_cast<const char*>(data.get()), static_cast<size_t>(len));
}

Result<Cert> ParseCert(const std::string& pem, const std::string& what) {
  const std::string not_pem = "pki: " + what + " is not a PEM certificate";
  auto der = PemBody(pem, {"CERTIFICATE"}, not_pem);
  if (!der.ok()) return der.status();
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  Cert cert(d2i_X509(nullptr, &p, static_cast<long>(der->size())));
  if (cert == nullptr || p != reinterpret_cast<const unsigned char*>(der->data()) + der->size()) {
    DrainErrors();
    return Status::InvalidArgument(not_pem);
  }
  return cert;
}

// Never prompts: an encrypted key simply fails to load.
int NoPassword(char*, int, int, void*) { return 0; }

Result<Key> ParsePrivateKey(const std::string& pem, const std::string& what) {
  auto bio = ReadBio(pem);
  if (!bio.ok()) return bio.status();
  Key key(PEM_read_bio_PrivateKey(bio->get(), nullptr, NoPassword, nullptr));
  if (key == nullptr) {
    DrainErrors();
    return Status::InvalidArgument("pki: " + what + " is not an unencrypted PEM private key");
  }
  return key;
}

Status CheckCommonName(const std::string& cn, const std::string& what) {
  if (cn.empty() || cn.size() > kMaxCommonName || cn.find('\0') != std::string::npos) {
    return Status::InvalidArgument("pki: " + what + " must be 1 to 64 bytes without NUL");
  }
  return Status::Ok();
}

Status CheckValidity(int days) {
  if (days < 1 || days > kMaxDays) {
    return Status::InvalidArgument("pki: validity must be 1 to 36500 days");
  }
  return Status::Ok();
}

Result<Name> MakeName(const std::string& cn, const std::string& organization) {
  Name name(X509_NAME_new());
  if (name == nullptr) return Failed("X509_NAME_new");
  auto add = [&](int nid, const std::string& value) {
    return X509_NAME_add_entry_by_NID(name.get(), nid, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.data()),
                                      static_cast<int>(value.size()), -1, 0) == 1;
  };
  if (!organization.empty() && !add(NID_organizationName, organization)) {
    return Failed("cannot set the organization");
  }
  if (!add(NID_commonName, cn)) return Failed("cannot set the common name");
  return name;
}

// A v3 certificate with everything but extensions and signature: random positive 128-bit
// serial, validity [now_s - 300 s, now_s + days].
Result<Cert> NewCert(X509_NAME* subject, X509_NAME* issuer, EVP_PKEY* public_key, int64_t now_s,
                     int days) {
  Cert cert(X509_new());
  Bignum serial(BN_new());
  if (cert == nullptr || serial == nullptr) return Failed("allocation failed");
  // The top bit set makes the serial exactly 128 bits, so never zero; BIGNUMs are positive.
  if (BN_rand(serial.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return Failed("cannot make a serial number");
  }
  const auto now = static_cast<time_t>(now_s);
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_subject_name(cert.get(), subject) != 1 ||
      X509_set_issuer_name(cert.get(), issuer) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - kBackdateSeconds) == nullptr ||
      ASN1_TIME_adj(X509_getm_notAfter(cert.get()), now, days, 0) == nullptr ||
      X509_set_pubkey(cert.get(), public_key) != 1) {
    return Failed("cannot fill in the certificate");
  }
  return cert;
}

// Adds an extension from a fixed OpenSSL config string (never from caller input). `issuer` is
// needed for authorityKeyIdentifier; `cert` itself for subjectKeyIdentifier.
Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Extension ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Failed(std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
  return Status::Ok();
}

Status AddExtensions(X509* cert, X509* issuer,
                     std::initializer_list<std::pair<int, const char*>> extensions) {
  for (const auto& [nid, value] : extensions) {
    Status s = AddExtension(cert, issuer, nid, value);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Result<std::string> SignAndEncode(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return Failed("signing the certificate failed");
  return WritePem([cert](BIO* bio) { return PEM_write_bio_X509(bio, cert); });
}

Result<std::string> PrivateKeyPem(EVP_PKEY* key) {
  return WritePem([key](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

Result<Key> NewP256Key() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) return Failed("P-256 key generation failed");
  return key;
}

struct Ca {
  Cert cert;
  Key key;
};

Result<Ca> LoadCa(const KeyAndCert& ca) {
  auto cert = ParseCert(ca.cert_pem, "CA certificate");
  if (!cert.ok()) return cert.status();
  auto key = ParsePrivateKey(ca.key_pem, "CA key");
  if (!key.ok()) return key.status();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    DrainErrors();
    return Status::InvalidArgument("pki: CA key does not match the CA certificate");
  }
  if (X509_check_ca(cert->get()) == 0) {
    return Status::InvalidArgument("pki: CA certificate is not a CA");
  }
  return Ca{std::move(cert).value(), std::move(key).value()};
}

bool IsDnsChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '*';
}

// One subjectAltName entry: an IP address if `entry` parses as one (IPv6 may be bracketed),
// else a DNS name. `cn` receives the form used as the CN (brackets removed).
Result<GeneralName> SanEntry(const std::string& entry, std::string* cn) {
  std::string text = entry;
  const bool bracketed = text.size() >= 2 && text.front() == '[' && text.back() == ']';
  if (bracketed) text = text.substr(1, text.size() - 2);
  unsigned char ip[16];
  int ip_len = 0;
  if (!bracketed && inet_pton(AF_INET, text.c_str(), ip) == 1) {
    ip_len = 4;
  } else if (inet_pton(AF_INET6, text.c_str(), ip) == 1) {
    ip_len = 16;
  } else if (bracketed) {
    return Status::InvalidArgument("pki: SAN '" + entry + "' is bracketed but not IPv6");
  }
  if (ip_len == 0) {
    bool valid = !text.empty() && text.size() <= kMaxDnsName;
    for (char c : text) valid = valid && IsDnsChar(c);
    if (!valid) return Status::InvalidArgument("pki: SAN '" + entry + "' is not an IP or DNS name");
  }
  GeneralName name(GENERAL_NAME_new());
  if (name == nullptr) return Failed("GENERAL_NAME_new");
  if (ip_len != 0) {
    ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
    if (octets == nullptr || ASN1_OCTET_STRING_set(octets, ip, ip_len) != 1) {
      ASN1_OCTET_STRING_free(octets);
      return Failed("cannot encode an IP SAN");
    }
    GENERAL_NAME_set0_value(name.get(), GEN_IPADD, octets);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr || ASN1_STRING_set(dns, text.data(), static_cast<int>(text.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      return Failed("cannot encode a DNS SAN");
    }
    GENERAL_NAME_set0_value(name.get(), GEN_DNS, dns);
  }
  *cn = text;
  return name;
}

// Parses a CSR and checks everything about it except whose key it carries.
Result<Request> ParseVerifiedCsr(const std::string& csr_pem) {
  if (csr_pem.size() > kMaxCsrBytes) {
    return Status::InvalidArgument("csr: larger than " + std::to_string(kMaxCsrBytes) + " bytes");
  }
  const std::string not_pem = "csr: not a PEM certificate request";
  auto der = PemBody(csr_pem, {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}, not_pem);
  if (!der.ok()) return der.status();
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  Request req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
  if (req == nullptr || p != reinterpret_cast<const unsigned char*>(der->data()) + der->size()) {
    DrainErrors();
    return Status::InvalidArgument(not_pem);
  }
  // OpenSSL parses a request whose key it cannot decode and leaves the key null.
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr) {
    DrainErrors();
    return Status::InvalidArgument("csr: public key does not decode");
  }
  // Checked before verifying so no other algorithm's (possibly costly) verification runs.
  if (EVP_PKEY_is_a(key, "ED25519") != 1) {
    return Status::InvalidArgument("csr: key is not Ed25519");
  }
  if (X509_REQ_verify(req.get(), key) != 1) {
    DrainErrors();
    return Status::InvalidArgument("csr: signature does not verify");
  }
  return req;
}

}  // namespace

Result<KeyAndCert> CreateCa(const std::string& common_name, int64_t now_s, int days) {
  ErrorQueueScope errors;
  Status s = CheckCommonName(common_name, "CA common name");
  if (s.ok()) s = CheckValidity(days);
  if (!s.ok()) return s;
  auto key = NewP256Key();
  if (!key.ok()) return key.status();
  auto name = MakeName(common_name, "Vigil");
  if (!name.ok()) return name.status();
  auto cert = NewCert(name->get(), name->get(), key->get(), now_s, days);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();
  s = AddExtensions(x, x,
                    {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                     {NID_key_usage, "critical,keyCertSign,cRLSign"},
                     {NID_subject_key_identifier, "hash"}});
  if (!s.ok()) return s;
  auto cert_pem = SignAndEncode(x, key->get());
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = PrivateKeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  return KeyAndCert{std::move(key_pem).value(), std::move(cert_pem).value()};
}

Result<KeyAndCert> IssueServerCert(const KeyAndCert& ca, const std::vector<std::string>& sans,
                                   int64_t now_s, int days) {
  ErrorQueueScope errors;
  if (sans.empty()) return Status::InvalidArgument("pki: a server certificate needs a SAN");
  Status s = CheckValidity(days);
  if (!s.ok()) return s;
  GeneralNames names(GENERAL_NAMES_new());
  if (names == nullptr) return Failed("GENERAL_NAMES_new");
  std::string cn;
  for (const std::string& san : sans) {
    std::string entry_cn;
    auto entry = SanEntry(san, &entry_cn);
    if (!entry.ok()) return entry.status();
    if (sk_GENERAL_NAME_push(names.get(), entry->get()) <= 0) return Failed("cannot add a SAN");
    entry->release();  // now owned by `names`
    if (cn.empty()) cn = entry_cn;
  }
  s = CheckCommonName(cn, "first SAN (the CN)");
  if (!s.ok()) return s;
  auto loaded = LoadCa(ca);
  if (!loaded.ok()) return loaded.status();
  auto key = NewP256Key();
  if (!key.ok()) return key.status();
  auto subject = MakeName(cn, "");
  if (!subject.ok()) return subject.status();
  X509* issuer = loaded->cert.get();
  auto cert = NewCert(subject->get(), X509_get_subject_name(issuer), key->get(), now_s, days);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();
  s = AddExtensions(x, issuer,
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "serverAuth"},
                     {NID_subject_key_identifier, "hash"},
                     {NID_authority_key_identifier, "keyid:always"}});
  if (!s.ok()) return s;
  if (X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return Failed("cannot add subjectAltName");
  }
  auto cert_pem = SignAndEncode(x, loaded->key.get());
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = PrivateKeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  return KeyAndCert{std::move(key_pem).value(), std::move(cert_pem).value()};
}

Result<std::string> MakeCsr(const std::string& private_key_pem, const std::string& common_name) {
  ErrorQueueScope errors;
  Status s = CheckCommonName(common_name, "CSR common name");
  if (!s.ok()) return s;
  auto key = ParsePrivateKey(private_key_pem, "device key");
  if (!key.ok()) return key.status();
  if (EVP_PKEY_is_a(key->get(), "ED25519") != 1) {
    return Status::InvalidArgument("pki: device key is not Ed25519");
  }
  auto name = MakeName(common_name, "");
  if (!name.ok()) return name.status();
  Request req(X509_REQ_new());
  if (req == nullptr) return Failed("X509_REQ_new");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name->get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1) {
    return Failed("cannot fill in the certificate request");
  }
  // Ed25519 hashes internally: the digest must be null.
  if (X509_REQ_sign(req.get(), key->get(), nullptr) <= 0) {
    return Failed("signing the certificate request failed");
  }
  X509_REQ* r = req.get();
  return WritePem([r](BIO* bio) { return PEM_write_bio_X509_REQ(bio, r); });
}

Status CheckCsr(const std::string& csr_pem, std::string_view expected_public_key) {
  ErrorQueueScope errors;
  if (expected_public_key.size() != 32) {
    return Status::InvalidArgument("csr: the expected public key must be 32 bytes");
  }
  auto req = ParseVerifiedCsr(csr_pem);
  if (!req.ok()) return req.status();
  unsigned char raw[32];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(X509_REQ_get0_pubkey(req->get()), raw, &len) != 1 ||
      len != sizeof(raw)) {
    DrainErrors();
    return Status::InvalidArgument("csr: public key does not decode");
  }
  if (std::memcmp(raw, expected_public_key.data(), sizeof(raw)) != 0) {
    return Status::InvalidArgument("csr: public key is not the enrolling device key");
  }
  return Status::Ok();
}

Result<std::string> IssueClientCert(const KeyAndCert& ca, const std::string& csr_pem,
                                    const std::string& device_id, int64_t now_s, int days) {
  ErrorQueueScope errors;
  Status s = CheckCommonName(device_id, "device id");
  if (s.ok()) s = CheckValidity(days);
  if (!s.ok()) return s;
  auto req = ParseVerifiedCsr(csr_pem);
  if (!req.ok()) return req.status();
  auto loaded = LoadCa(ca);
  if (!loaded.ok()) return loaded.status();
  auto subject = MakeName(device_id, "Vigil device");
  if (!subject.ok()) return subject.status();
  X509* issuer = loaded->cert.get();
  auto cert = NewCert(subject->get(), X509_get_subject_name(issuer),
                      X509_REQ_get0_pubkey(req->get()), now_s, days);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();
  s = AddExtensions(x, issuer,
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "clientAuth"},
                     {NID_subject_key_identifier, "hash"},
                     {NID_authority_key_identifier, "keyid:always"}});
  if (!s.ok()) return s;
  return SignAndEncode(x, loaded->key.get());
}

Result<std::string> CertCommonName(const std::string& cert_pem) {
  ErrorQueueScope errors;
  auto cert = ParseCert(cert_pem, "peer certificate");
  if (!cert.ok()) return cert.status();
  X509_NAME* subject = X509_get_subject_name(cert->get());
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return Status::InvalidArgument("pki: certificate subject has no CN");
  if (X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) {
    return Status::InvalidArgument("pki: certificate subject has more than one CN");
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* raw_utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&raw_utf8, data);
  OpenSslBuffer<unsigned char> utf8(raw_utf8);
  if (len < 0) return Status::InvalidArgument("pki: certificate CN is not a valid string");
  std::string cn(reinterpret_cast<const char*>(utf8.get()), static_cast<size_t>(len));
  if (cn.empty() || cn.find('\0') != std::string::npos) {
    return Status::InvalidArgument("pki: certificate CN is empty or holds a NUL");
  }
  return cn;
}

Status VerifyCertChain(const std::string& cert_pem, const std::string& ca_cert_pem, int64_t now_s) {
  ErrorQueueScope errors;
  auto cert = ParseCert(cert_pem, "certificate");
  if (!cert.ok()) return cert.status();
  auto ca = ParseCert(ca_cert_pem, "CA certificate");
  if (!ca.ok()) return ca.status();
  Store store(X509_STORE_new());
  StoreCtx ctx(X509_STORE_CTX_new());
  if (store == nullptr || ctx == nullptr || X509_STORE_add_cert(store.get(), ca->get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return Failed("cannot set up certificate verification");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(now_s));
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx.get()) != 1) {
    return Status::InvalidArgument(
        std::string("pki: certificate does not chain to the CA: ") +
        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  return Status::Ok();
}

}  // namespace vigil::pki

namespace vigil::pki {

Result<std::string> CertEd25519PublicKey(const std::string& cert_pem) {
  ErrorQueueScope errors;
  auto cert = ParseCert(cert_pem, "certificate");
  if (!cert.ok()) return cert.status();
  EVP_PKEY* key = X509_get0_pubkey(cert->get());
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument("pki: certificate key is not Ed25519");
  }
  std::string raw(32, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
      len != raw.size()) {
    return Failed("certificate public key");
  }
  return raw;
}

Result<int64_t> CertNotAfter(const std::string& cert_pem) {
  ErrorQueueScope errors;
  auto cert = ParseCert(cert_pem, "certificate");
  if (!cert.ok()) return cert.status();
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert->get()), &tm) != 1) {
    return Status::InvalidArgument("pki: certificate notAfter does not parse");
  }
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace vigil::pki

#include "proto/pki.h"

#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "proto/signing.h"

namespace vigil::pki {
namespace {

constexpr int64_t kNow = 1700000000;  // 2023-11-14
constexpr int64_t kDay = 86400;

template <auto kFree>
struct Freer {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};
using Bio = std::unique_ptr<BIO, Freer<BIO_free>>;
using Cert = std::unique_ptr<X509, Freer<X509_free>>;
using Key = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY_free>>;
using Request = std::unique_ptr<X509_REQ, Freer<X509_REQ_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, Freer<GENERAL_NAMES_free>>;

Bio ReadBio(const std::string& s) {
  return Bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

Cert ParseCert(const std::string& pem) {
  return Cert(PEM_read_bio_X509(ReadBio(pem).get(), nullptr, nullptr, nullptr));
}

std::string Must(Result<std::string> r) {
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(r).value();
}

KeyAndCert MustCa(const std::string& cn = "Vigil test CA") {
  auto ca = CreateCa(cn, kNow, 3650);
  REQUIRE_MESSAGE(ca.ok(), ca.status().ToString());
  return std::move(ca).value();
}

signing::DeviceKey MustDeviceKey() {
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  return std::move(key).value();
}

std::string CsrFor(const signing::DeviceKey& key, const std::string& cn = "agent") {
  return Must(MakeCsr(Must(key.ToPem()), cn));
}

// A well-formed CSR for a key of another algorithm, signed with SHA-256.
std::string P256Csr() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  REQUIRE(key != nullptr);
  Request req(X509_REQ_new());
  REQUIRE(req != nullptr);
  REQUIRE(X509_REQ_set_pubkey(req.get(), key.get()) == 1);
  REQUIRE(X509_REQ_sign(req.get(), key.get(), EVP_sha256()) > 0);
  Bio out(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio_X509_REQ(out.get(), req.get()) == 1);
  return BioText(out.get());
}

// Re-encodes `pem`'s DER body under the same label after `edit` changed it.
template <typename Edit>
std::string EditDer(const std::string& pem, Edit edit) {
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  REQUIRE(PEM_read_bio(ReadBio(pem).get(), &name, &header, &data, &len) == 1);
  std::string der(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
  std::string label = name;
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  edit(der);
  Bio out(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio(out.get(), label.c_str(), "",
                        reinterpret_cast<const unsigned char*>(der.data()),
                        static_cast<long>(der.size())) > 0);
  return BioText(out.get());
}

std::set<std::string> SubjectAltNames(X509* cert) {
  Names names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  std::set<std::string> out;
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names.get(), i);
    int type = 0;
    auto* value = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(gen, &type));
    std::string bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                      static_cast<size_t>(ASN1_STRING_length(value)));
    out.insert((type == GEN_IPADD ? "IP:"
                : type == GEN_DNS ? "DNS:"
                                  : "?:") +
               (type == GEN_IPADD ? signing::Hex(bytes) : bytes));
  }
  return out;
}

std::string RawPublicKey(X509* cert) {
  unsigned char raw[32];
  size_t len = sizeof(raw);
  REQUIRE(EVP_PKEY_get_raw_public_key(X509_get0_pubkey(cert), raw, &len) == 1);
  return std::string(reinterpret_cast<const char*>(raw), len);
}

TEST_CASE("a CA is a self-signed P-256 CA that verifies against itself") {
  KeyAndCert ca = MustCa();
  CHECK(ca.key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);  // PKCS#8, unencrypted
  Cert cert = ParseCert(ca.cert_pem);
  REQUIRE(cert != nullptr);
  CHECK(X509_check_ca(cert.get()) == 1);
  CHECK(X509_get_version(cert.get()) == X509_VERSION_3);
  CHECK((X509_get_key_usage(cert.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
        (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get_pathlen(cert.get()) == 0);
  CHECK(X509_get0_subject_key_id(cert.get()) != nullptr);
  CHECK(EVP_PKEY_is_a(X509_get0_pubkey(cert.get()), "EC") == 1);
  CHECK(X509_get_signature_nid(cert.get()) == NID_ecdsa_with_SHA256);
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
  CHECK(ASN1_STRING_type(serial) == V_ASN1_INTEGER);  // positive
  CHECK(ASN1_STRING_length(serial) == 16);
  int basic_constraints = X509_get_ext_by_NID(cert.get(), NID_basic_constraints, -1);
  REQUIRE(basic_constraints >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(cert.get(), basic_constraints)) == 1);
  CHECK(Must(CertCommonName(ca.cert_pem)) == "Vigil test CA");
  CHECK(VerifyCertChain(ca.cert_pem, ca.cert_pem, kNow).ok());
  // Two CAs never share a serial.
  CHECK(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(ParseCert(MustCa().cert_pem).get())) != 0);
}

TEST_CASE("bad CA parameters are rejected") {
  CHECK(CreateCa("", kNow, 10).status().code() == Status::Code::kInvalidArgument);
  CHECK(CreateCa(std::string(65, 'x'), kNow, 10).status().code() == Status::Code::kInvalidArgument);
  CHECK(CreateCa("ca", kNow, 0).status().code() == Status::Code::kInvalidArgument);
  CHECK(CreateCa("ca", kNow, -1).status().code() == Status::Code::kInvalidArgument);
}

TEST_CASE("a server certificate carries its SANs and chains to its CA only") {
  KeyAndCert ca = MustCa();
  auto server =
      IssueServerCert(ca, {"127.0.0.1", "[::1]", "vigil.example.com", "localhost"}, kNow, 365);
  REQUIRE_MESSAGE(server.ok(), server.status().ToString());
  Cert cert = ParseCert(server->cert_pem);
  REQUIRE(cert != nullptr);
  CHECK(SubjectAltNames(cert.get()) ==
        std::set<std::string>{"IP:7f000001", "IP:00000000000000000000000000000001",
                              "DNS:vigil.example.com", "DNS:localhost"});
  CHECK(Must(CertCommonName(server->cert_pem)) == "127.0.0.1");
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
  CHECK((X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER) != 0);
  CHECK((X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT) == 0);
  CHECK(X509_check_ca(cert.get()) == 0);
  CHECK(X509_get0_authority_key_id(cert.get()) != nullptr);
  CHECK(X509_check_host(cert.get(), "vigil.example.com", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(cert.get(), "::1", 0) == 1);

  // The returned key is the certificate's key.
  Key key(PEM_read_bio_PrivateKey(ReadBio(server->key_pem).get(), nullptr, nullptr, nullptr));
  REQUIRE(key != nullptr);
  CHECK(X509_check_private_key(cert.get(), key.get()) == 1);

  CHECK(VerifyCertChain(server->cert_pem, ca.cert_pem, kNow).ok());
  CHECK(VerifyCertChain(server->cert_pem, ca.cert_pem, kNow + 364 * kDay).ok());
  Status other = VerifyCertChain(server->cert_pem, MustCa().cert_pem, kNow);
  CHECK(other.code() == Status::Code::kInvalidArgument);
  CHECK(other.message().find("unable to get local issuer certificate") != std::string::npos);
}

TEST_CASE("a DNS name as first SAN becomes the CN") {
  auto server = IssueServerCert(MustCa(), {"[::1]"}, kNow, 1);
  REQUIRE(server.ok());
  CHECK(Must(CertCommonName(server->cert_pem)) == "::1");
  server = IssueServerCert(MustCa(), {"vigil-server", "10.0.0.1"}, kNow, 1);
  REQUIRE(server.ok());
  CHECK(Must(CertCommonName(server->cert_pem)) == "vigil-server");
}

TEST_CASE("bad server certificate requests are rejected") {
  KeyAndCert ca = MustCa();
  KeyAndCert other = MustCa();
  struct Case {
    const char* name;
    KeyAndCert ca;
    std::vector<std::string> sans;
    int days;
    const char* message;
  };
  const Case cases[] = {
      {"no SAN", ca, {}, 10, "needs a SAN"},
      {"empty SAN", ca, {""}, 10, "is not an IP or DNS name"},
      {"SAN with a comma (config injection)", ca, {"a,IP:1.2.3.4"}, 10, "is not an IP or DNS"},
      {"SAN with a space", ca, {"a b"}, 10, "is not an IP or DNS name"},
      {"bracketed IPv4", ca, {"[127.0.0.1]"}, 10, "bracketed but not IPv6"},
      {"later bad SAN", ca, {"ok", "bad/"}, 10, "is not an IP or DNS name"},
      {"first SAN too long for a CN", ca, {std::string(70, 'a')}, 10, "must be 1 to 64"},
      {"zero days", ca, {"ok"}, 0, "validity"},
      {"CA key of another CA", {other.key_pem, ca.cert_pem}, {"ok"}, 10, "does not match"},
      {"garbage CA certificate", {ca.key_pem, "junk"}, {"ok"}, 10, "not a PEM certificate"},
      {"garbage CA key", {"junk", ca.cert_pem}, {"ok"}, 10, "not an unencrypted PEM"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto r = IssueServerCert(c.ca, c.sans, kNow, c.days);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Status::Code::kInvalidArgument);
    CHECK_MESSAGE(r.status().message().find(c.message) != std::string::npos, r.status().message());
  }
}

TEST_CASE("a leaf certificate cannot act as a CA") {
  KeyAndCert ca = MustCa();
  auto server = IssueServerCert(ca, {"localhost"}, kNow, 10);
  REQUIRE(server.ok());
  auto r = IssueServerCert(*server, {"evil"}, kNow, 10);
  CHECK(r.status().message() == "pki: CA certificate is not a CA");
}

TEST_CASE("a device CSR passes CheckCsr for its own key only") {
  signing::DeviceKey key = MustDeviceKey();
  std::string csr = CsrFor(key);
  CHECK(csr.rfind("-----BEGIN CERTIFICATE REQUEST-----", 0) == 0);
  Status s = CheckCsr(csr, key.PublicKey());
  CHECK_MESSAGE(s.ok(), s.ToString());
  CHECK(CheckCsr(csr + "\n\n", key.PublicKey()).ok());  // trailing whitespace is fine

  Status other = CheckCsr(csr, MustDeviceKey().PublicKey());
  CHECK(other.code() == Status::Code::kInvalidArgument);
  CHECK(other.message() == "csr: public key is not the enrolling device key");
  CHECK(CheckCsr(csr, "short").message() == "csr: the expected public key must be 32 bytes");
}

TEST_CASE("every malformed or foreign CSR is rejected with a precise message") {
  signing::DeviceKey key = MustDeviceKey();
  const std::string csr = CsrFor(key);
  KeyAndCert ca = MustCa();
  // The signature BIT STRING is the last thing in the DER.
  std::string flipped_signature = EditDer(csr, [](std::string& der) { der.back() ^= 0x01; });
  // The CN "agent" is inside the signed part.
  std::string flipped_subject = EditDer(csr, [](std::string& der) {
    size_t at = der.find("agent");
    REQUIRE(at != std::string::npos);
    der[at] = 'A';
  });
  std::string truncated_der = EditDer(csr, [](std::string& der) { der.resize(der.size() - 10); });
  std::string trailing_der = EditDer(csr, [](std::string& der) { der += '\0'; });
  std::string encrypted_header = csr;
  encrypted_header.insert(csr.find('\n') + 1,
                          "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
                          "00000000000000000000000000000000\n\n");

  struct Case {
    const char* name;
    std::string csr;
    const char* message;
  };
  const Case cases[] = {
      {"empty", "", "csr: not a PEM certificate request"},
      {"garbage", "hello, I am a certificate request", "csr: not a PEM certificate request"},
      {"truncated PEM", csr.substr(0, csr.size() / 2), "csr: not a PEM certificate request"},
      {"truncated DER", truncated_der, "csr: not a PEM certificate request"},
      {"DER followed by a byte", trailing_der, "csr: not a PEM certificate request"},
      {"trailing text", csr + "x", "csr: not a PEM certificate request"},
      {"a second PEM block", csr + csr, "csr: not a PEM certificate request"},
      {"a certificate instead", ca.cert_pem, "csr: not a PEM certificate request"},
      {"PEM headers", encrypted_header, "csr: not a PEM certificate request"},
      {"oversized", csr + std::string(kMaxCsrBytes, ' '), "csr: larger than 8192 bytes"},
      {"flipped signature bit", flipped_signature, "csr: signature does not verify"},
      {"edited subject", flipped_subject, "csr: signature does not verify"},
      {"P-256 key", P256Csr(), "csr: key is not Ed25519"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Status s = CheckCsr(c.csr, key.PublicKey());
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(s.message() == c.message);
    // Issuing re-checks everything but the key's identity.
    auto issued = IssueClientCert(ca, c.csr, "dev-1", kNow, 30);
    CHECK(issued.status().code() == Status::Code::kInvalidArgument);
    CHECK(issued.status().message() == c.message);
    CHECK(ERR_peek_error() == 0);  // nothing left behind for gRPC's TLS on this thread
  }
}

TEST_CASE("MakeCsr needs an Ed25519 key and a usable CN") {
  signing::DeviceKey key = MustDeviceKey();
  std::string pem = Must(key.ToPem());
  CHECK(MakeCsr(MustCa().key_pem, "agent").status().message() == "pki: device key is not Ed25519");
  CHECK(MakeCsr("junk", "agent").status().code() == Status::Code::kInvalidArgument);
  CHECK(MakeCsr(pem, "").status().code() == Status::Code::kInvalidArgument);
  CHECK(MakeCsr(pem, std::string(65, 'a')).status().code() == Status::Code::kInvalidArgument);
}

TEST_CASE("a client certificate names the device, not the CSR, and chains to the CA") {
  KeyAndCert ca = MustCa();
  signing::DeviceKey key = MustDeviceKey();
  std::string csr = CsrFor(key, "i-claim-to-be-someone-else");
  REQUIRE(CheckCsr(csr, key.PublicKey()).ok());
  std::string pem = Must(IssueClientCert(ca, csr, "dev-42", kNow, 90));
  CHECK(Must(CertCommonName(pem)) == "dev-42");
  Cert cert = ParseCert(pem);
  REQUIRE(cert != nullptr);
  char org[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_organizationName, org,
                            sizeof(org));
  CHECK(std::string(org) == "Vigil device");
  CHECK(RawPublicKey(cert.get()) == key.PublicKey());
  CHECK((X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT) != 0);
  CHECK((X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER) == 0);
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
  CHECK(X509_check_ca(cert.get()) == 0);
  CHECK((X509_get_key_usage(cert.get()) & KU_DIGITAL_SIGNATURE) != 0);
  CHECK((X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN) == 0);
  CHECK(X509_get_signature_nid(cert.get()) == NID_ecdsa_with_SHA256);
  CHECK(X509_get0_authority_key_id(cert.get()) != nullptr);
  CHECK(VerifyCertChain(pem, ca.cert_pem, kNow).ok());
  CHECK(!VerifyCertChain(pem, MustCa().cert_pem, kNow).ok());

  CHECK(IssueClientCert(ca, csr, "", kNow, 90).status().code() == Status::Code::kInvalidArgument);
  CHECK(IssueClientCert(ca, csr, "dev", kNow, 0).status().code() == Status::Code::kInvalidArgument);
  CHECK(IssueClientCert({ca.key_pem, MustCa().cert_pem}, csr, "dev", kNow, 90).status().message() ==
        "pki: CA key does not match the CA certificate");
}

TEST_CASE("validity windows are enforced") {
  KeyAndCert ca = MustCa();
  signing::DeviceKey key = MustDeviceKey();
  std::string pem = Must(IssueClientCert(ca, CsrFor(key), "dev-1", kNow, 30));
  CHECK(VerifyCertChain(pem, ca.cert_pem, kNow - 299).ok());  // backdated for clock skew
  struct Case {
    const char* name;
    int64_t now;
    const char* reason;
  };
  const Case cases[] = {
      {"long after expiry", kNow + 10 * 365 * kDay, "certificate has expired"},
      {"just after expiry", kNow + 30 * kDay + 1, "certificate has expired"},
      {"before issue", kNow - kDay, "certificate is not yet valid"},
      {"CA expired too", kNow + 20 * 365 * kDay, "has expired"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Status s = VerifyCertChain(pem, ca.cert_pem, c.now);
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_MESSAGE(s.message().find(c.reason) != std::string::npos, s.message());
  }
}

TEST_CASE("unparsable certificates are rejected") {
  KeyAndCert ca = MustCa();
  std::string truncated = ca.cert_pem.substr(0, ca.cert_pem.size() / 2);
  for (const std::string& bad : {std::string(), std::string("junk"), truncated,
                                 CsrFor(MustDeviceKey()), ca.key_pem, ca.cert_pem + "x"}) {
    CAPTURE(bad);
    CHECK(CertCommonName(bad).status().code() == Status::Code::kInvalidArgument);
    CHECK(VerifyCertChain(bad, ca.cert_pem, kNow).code() == Status::Code::kInvalidArgument);
    CHECK(VerifyCertChain(ca.cert_pem, bad, kNow).code() == Status::Code::kInvalidArgument);
  }
}

TEST_CASE("CertCommonName needs exactly one CN") {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  REQUIRE(key != nullptr);
  auto make = [&](std::vector<std::string> cns) {
    Cert cert(X509_new());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("Vigil"), -1, -1, 0);
    for (const std::string& cn : cns) {
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    }
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key.get());
    REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
    Bio out(BIO_new(BIO_s_mem()));
    REQUIRE(PEM_write_bio_X509(out.get(), cert.get()) == 1);
    return BioText(out.get());
  };
  CHECK(Must(CertCommonName(make({"one"}))) == "one");
  CHECK(CertCommonName(make({})).status().message() == "pki: certificate subject has no CN");
  CHECK(CertCommonName(make({"a", "b"})).status().message() ==
        "pki: certificate subject has more than one CN");
}

}  // namespace
}  // namespace vigil::pki

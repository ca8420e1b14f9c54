#include "server/tls.h"

#include <grpcpp/security/server_credentials.h>
#include <sys/stat.h>

#include <cstdlib>

#include "common/files.h"

namespace vigil::server {
namespace {

Status CheckKeyFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, path);
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied(path + " is readable by group or others; chmod 600 " + path);
  }
  return Status::Ok();
}

}  // namespace

std::string TlsDir(const std::string& data_dir) { return data_dir + "/tls"; }

Result<TlsMaterial> CreateTlsMaterial(const std::string& data_dir,
                                      const std::vector<std::string>& sans, int64_t now_s) {
  std::string dir = TlsDir(data_dir);
  struct stat st {};
  if (::stat((dir + "/ca.key").c_str(), &st) == 0) {
    return Status::AlreadyExists(dir +
                                 "/ca.key exists; refusing to replace the CA (devices' "
                                 "certificates chain to it)");
  }
  if (Status s = MakeDirs(dir, 0700); !s.ok()) return s;
  TlsMaterial tls;
  auto ca = pki::CreateCa("Vigil private CA", now_s, 3650);
  if (!ca.ok()) return ca.status();
  tls.ca = std::move(ca).value();
  auto server = pki::IssueServerCert(tls.ca, sans, now_s, 825);
  if (!server.ok()) return server.status();
  tls.server = std::move(server).value();
  for (const auto& [name, data, mode] :
       {std::tuple<const char*, const std::string&, mode_t>{"ca.key", tls.ca.key_pem, 0600},
        {"ca.crt", tls.ca.cert_pem, 0644},
        {"server.key", tls.server.key_pem, 0600},
        {"server.crt", tls.server.cert_pem, 0644}}) {
    if (Status s = WriteFileAtomic(dir + "/" + name, data, mode); !s.ok()) return s;
  }
  return tls;
}

Result<TlsMaterial> RenewServerCert(const std::string& data_dir,
                                    const std::vector<std::string>& sans, int64_t now_s) {
  auto tls = LoadTlsMaterial(data_dir);
  if (!tls.ok()) return tls.status();
  auto server = pki::IssueServerCert(tls->ca, sans, now_s, 825);
  if (!server.ok()) return server.status();
  tls->server = std::move(server).value();
  std::string dir = TlsDir(data_dir);
  // Key first: a crash in between leaves a new key with the old certificate, which the server
  // refuses to start with (mismatch), rather than a silently wrong pair.
  if (Status s = WriteFileAtomic(dir + "/server.key", tls->server.key_pem, 0600); !s.ok()) return s;
  if (Status s = WriteFileAtomic(dir + "/server.crt", tls->server.cert_pem, 0644); !s.ok())
    return s;
  return tls;
}

Result<TlsMaterial> LoadTlsMaterial(const std::string& data_dir) {
  std::string dir = TlsDir(data_dir);
  TlsMaterial tls;
  struct Item {
    const char* name;
    std::string* out;
    bool secret;
  } items[] = {{"ca.crt", &tls.ca.cert_pem, false},
               {"ca.key", &tls.ca.key_pem, true},
               {"server.crt", &tls.server.cert_pem, false},
               {"server.key", &tls.server.key_pem, true}};
  for (auto& item : items) {
    std::string path = dir + "/" + item.name;
    auto data = ReadWholeFile(path, 1u << 20);
    if (!data.ok()) {
      if (data.status().code() == Status::Code::kNotFound) {
        return Status::NotFound(path + " is missing: run `vigil-server init --data-dir " +
                                data_dir + " --server-address HOST:PORT` first, or pass " +
                                "--insecure for plaintext on loopback");
      }
      return data.status();
    }
    if (item.secret) {
      if (Status s = CheckKeyFile(path); !s.ok()) return s;
    }
    *item.out = std::move(data).value();
  }
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsMaterial& tls) {
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_root_certs = tls.ca.cert_pem;
  opts.pem_key_cert_pairs.push_back({tls.server.key_pem, tls.server.cert_pem});
  return grpc::SslServerCredentials(opts);
}

Status RequireTls13() {
  // gRPC 1.51 has no API for the minimum TLS version and sets TLS 1.2 as the floor on every
  // context it makes (so OpenSSL's MinProtocol configuration is overridden; we tried). What it
  // does read is GRPC_SSL_CIPHER_SUITES, the TLS 1.2 cipher list. Limiting it to one suite that
  // needs an RSA certificate, while Vigil's certificates are ECDSA, leaves TLS 1.2 clients no
  // suite to agree on, so only TLS 1.3 (whose suites are configured separately) completes.
  // The e2e test checks both with `openssl s_client -tls1_2` and `-tls1_3`.
  if (::setenv("GRPC_SSL_CIPHER_SUITES", "ECDHE-RSA-AES256-GCM-SHA384", 1) != 0) {
    return Status::FromErrno(errno, "setenv GRPC_SSL_CIPHER_SUITES");
  }
  return Status::Ok();
}

}  // namespace vigil::server

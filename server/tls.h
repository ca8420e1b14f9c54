// The server's TLS material and gRPC credentials. `vigil-server init` creates, in DATA_DIR/tls/
// (0700): ca.crt and ca.key (the private CA that signs the server's certificate and devices'
// client certificates), server.crt and server.key. Keys are 0600 and never leave the server.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/pki.h"

namespace vigil::server {

struct TlsMaterial {
  pki::KeyAndCert ca;
  pki::KeyAndCert server;
};

std::string TlsDir(const std::string& data_dir);

// Creates the CA and a server certificate for `sans`; AlreadyExists if DATA_DIR/tls has a CA.
Result<TlsMaterial> CreateTlsMaterial(const std::string& data_dir,
                                      const std::vector<std::string>& sans, int64_t now_s);
// Issues a new server certificate and key from the existing CA (renewal, new names).
Result<TlsMaterial> RenewServerCert(const std::string& data_dir,
                                    const std::vector<std::string>& sans, int64_t now_s);
// NotFound (saying to run `vigil-server init`) when missing; refuses keys others can read.
Result<TlsMaterial> LoadTlsMaterial(const std::string& data_dir);

// TLS server credentials: the server's certificate, and client certificates requested and, when
// presented, verified against the CA (required per call where the server demands mTLS).
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsMaterial& tls);

// Makes every TLS context this process creates refuse protocol versions below TLS 1.3. Call
// before gRPC creates any (i.e. before building the server).
Status RequireTls13();

}  // namespace vigil::server

#include <grpcpp/grpcpp.h>

#include "agent/agent.h"
#include "vigil/v1/agent_service.grpc.pb.h"

namespace vigil::agent {
namespace {

Status FromGrpc(const grpc::Status& s, const std::string& server) {
  std::string m = server + ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return Status::Ok();
    case grpc::StatusCode::UNAVAILABLE:
      return Status::Unavailable(m);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Status::DeadlineExceeded(m);
    case grpc::StatusCode::PERMISSION_DENIED:
      return Status::PermissionDenied(m);
    case grpc::StatusCode::UNAUTHENTICATED:
      return Status::Unauthenticated(m);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Status::ResourceExhausted(m);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Status::FailedPrecondition(m);
    case grpc::StatusCode::INVALID_ARGUMENT:
      return Status::InvalidArgument(m);
    case grpc::StatusCode::NOT_FOUND:
      return Status::NotFound(m);
    default:
      return Status::Internal(m + " (gRPC code " + std::to_string(s.error_code()) + ")");
  }
}

class GrpcTransport final : public Transport {
 public:
  explicit GrpcTransport(const TransportOptions& o)
      : server_(o.server), timeout_(o.timeout), stub_(v1::AgentService::NewStub(Channel(o))) {}

  static std::shared_ptr<grpc::Channel> Channel(const TransportOptions& o) {
    if (o.insecure) return grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials());
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = o.ca_pem;
    tls.pem_private_key = o.client_key_pem;
    tls.pem_cert_chain = o.client_cert_pem;
    return grpc::CreateChannel(o.server, grpc::SslCredentials(tls));
  }

  Result<v1::RotateKeyResponse> RotateKey(const v1::RotateKeyRequest& req) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    v1::RotateKeyResponse resp;
    grpc::Status s = stub_->RotateKey(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, server_);
    return resp;
  }

  Result<v1::EnrollResponse> Enroll(const v1::EnrollRequest& req) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    v1::EnrollResponse resp;
    grpc::Status s = stub_->Enroll(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, server_);
    return resp;
  }

  Result<v1::ReportResponse> Report(const v1::ReportRequest& req) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    v1::ReportResponse resp;
    grpc::Status s = stub_->Report(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, server_);
    return resp;
  }

 private:
  std::string server_;
  std::chrono::seconds timeout_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
};

}  // namespace

std::unique_ptr<Transport> NewGrpcTransport(const TransportOptions& options) {
  return std::make_unique<GrpcTransport>(options);
}

}  // namespace vigil::agent

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

// A channel (with its TCP and TLS connection) per call, dropped when the call returns. gRPC
// starts its threads (timer managers, executors, the event engine's pool) with the first gRPC
// object and stops them only when the last one is gone, and while they run they wake up several
// times a second, call or no call. With one channel kept for the daemon's life the idle agent woke
// 3.5 times a second and spent 14 ms of CPU a minute; now it holds no gRPC object and no thread
// between reports, for about 5.5 ms more CPU per call (a new SSL_CTX, the client key decoded
// again, TCP and TLS 1.3 handshakes): at the default hourly interval 840 ms of CPU an hour
// become 5.5 ms, and the handshakes are no more than before (the server closes connections idle
// for 5 minutes). A backlog sent in several batches pays the handshake per batch.
// (footprint_bench; docs/scaling.md, "Agent footprint".)
class GrpcTransport final : public Transport {
 public:
  explicit GrpcTransport(const TransportOptions& o) : options_(o) {}

  Result<v1::RotateKeyResponse> RotateKey(const v1::RotateKeyRequest& req) override {
    return Call<v1::RotateKeyResponse>(&v1::AgentService::Stub::RotateKey, req);
  }

  Result<v1::EnrollResponse> Enroll(const v1::EnrollRequest& req) override {
    return Call<v1::EnrollResponse>(&v1::AgentService::Stub::Enroll, req);
  }

  Result<v1::ReportResponse> Report(const v1::ReportRequest& req) override {
    return Call<v1::ReportResponse>(&v1::AgentService::Stub::Report, req);
  }

 private:
  std::shared_ptr<grpc::Channel> NewChannel() const {
    const TransportOptions& o = options_;
    if (o.insecure) return grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials());
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = o.ca_pem;
    tls.pem_private_key = o.client_key_pem;
    tls.pem_cert_chain = o.client_cert_pem;
    return grpc::CreateChannel(o.server, grpc::SslCredentials(tls));
  }

  template <typename Response, typename Request, typename Method>
  Result<Response> Call(Method method, const Request& req) const {
    auto stub = v1::AgentService::NewStub(NewChannel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout);
    Response resp;
    grpc::Status s = ((*stub).*method)(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, options_.server);
    return resp;
  }

  TransportOptions options_;
};

}  // namespace

std::unique_ptr<Transport> NewGrpcTransport(const TransportOptions& options) {
  return std::make_unique<GrpcTransport>(options);
}

}  // namespace vigil::agent

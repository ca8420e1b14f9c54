#include "server/services.h"

#include <grpcpp/security/auth_context.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <string_view>
#include <unordered_map>

#include "proto/pki.h"

namespace vigil::server {

grpc::Status ToGrpc(const Status& s) {
  using C = Status::Code;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case C::kOk:
      return grpc::Status::OK;
    case C::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case C::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case C::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case C::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case C::kDeadlineExceeded:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case C::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case C::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case C::kUnauthenticated:
      code = grpc::StatusCode::UNAUTHENTICATED;
      break;
    case C::kResourceExhausted:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case C::kIoError:
    case C::kCorruption:
    case C::kInternal:
      code = grpc::StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, s.message());
}

template <typename Resp>
static grpc::Status Reply(Result<Resp> r, Resp* out) {
  if (!r.ok()) return ToGrpc(r.status());
  *out = std::move(r).value();
  return grpc::Status::OK;
}

namespace {

// The Ed25519 key of a verified client certificate, by the certificate's exact PEM text:
// decoding it with OpenSSL on every call was the largest cost of a report over mutual TLS. The
// same bytes always give the same key, so caching the parse changes nothing else; bounded, and
// emptied when full.
std::string ClientCertKey(std::string_view pem) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::string> keys;
  constexpr size_t kMaxEntries = 16384;
  std::string text(pem);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = keys.find(text); it != keys.end()) return it->second;
  }
  auto key = pki::CertEd25519PublicKey(text);
  // A certificate from our CA always carries a device key; anything else binds to nothing.
  std::string out = key.ok() ? *key : std::string("\0", 1);
  std::lock_guard<std::mutex> lock(mu);
  if (keys.size() >= kMaxEntries) keys.clear();
  keys.emplace(std::move(text), out);
  return out;
}

}  // namespace

CallInfo CallInfoOf(const grpc::ServerContext& ctx) {
  CallInfo info;
  info.peer = ctx.peer();
  auto auth = ctx.auth_context();
  if (auth && auth->IsPeerAuthenticated()) {
    // Only present when the client's certificate chained to the server's CA (the server asks
    // for and verifies client certificates whenever TLS is on).
    for (const auto& cn : auth->FindPropertyValues("x509_common_name")) {
      info.client_cert_device.assign(cn.data(), cn.size());
    }
    for (const auto& pem : auth->FindPropertyValues("x509_pem_cert")) {
      info.client_cert_key = ClientCertKey(std::string_view(pem.data(), pem.size()));
    }
  }
  return info;
}

grpc::Status AgentServiceImpl::Enroll(grpc::ServerContext* ctx, const v1::EnrollRequest* req,
                                      v1::EnrollResponse* resp) {
  return Reply(aggregator_.Enroll(*req, CallInfoOf(*ctx)), resp);
}

grpc::Status AgentServiceImpl::Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                                      v1::ReportResponse* resp) {
  ScopedTimer timer(report_duration_);  // vigil_report_duration_seconds: the whole call
  return Reply(aggregator_.Report(*req, CallInfoOf(*ctx)), resp);
}

grpc::Status AgentServiceImpl::RotateKey(grpc::ServerContext* ctx, const v1::RotateKeyRequest* req,
                                         v1::RotateKeyResponse* resp) {
  return Reply(aggregator_.RotateKey(*req, CallInfoOf(*ctx)), resp);
}

Result<Principal> AuthenticateBearer(Aggregator& aggregator, const Credentials& credentials,
                                     const std::string& peer, const std::string* authorization,
                                     const std::string& method, const std::string& missing_hint) {
  if (!aggregator.AuthAllowed(peer)) {
    return Status::ResourceExhausted("too many failed authentications from this address");
  }
  if (authorization == nullptr) {
    aggregator.AuthFailed(peer, "auth.rejected.no_token", method + ": no token");
    return Status::Unauthenticated("a token is required: " + missing_hint +
                                   " (create one with vigil-server token create)");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization->compare(0, kBearer.size(), kBearer) != 0) {
    aggregator.AuthFailed(peer, "auth.rejected.bad_token",
                          method + ": authorization is not 'Bearer TOKEN'");
    return Status::Unauthenticated("authorization metadata must be 'Bearer TOKEN'");
  }
  auto principal = credentials.Authenticate(authorization->substr(kBearer.size()));
  if (!principal.ok()) {
    // The message names the token only by its stored name, never by the presented string.
    aggregator.AuthFailed(peer, "auth.rejected.bad_token",
                          method + ": " + principal.status().message());
  }
  return principal;
}

Status CheckRole(Aggregator& aggregator, const std::string& peer, const Principal& principal,
                 Permission permission, const std::string& method) {
  if (RoleAllows(principal.role, permission)) return Status::Ok();
  aggregator.AuthFailed(peer, "auth.rejected.forbidden", method + " by " + principal.Actor());
  return Status::PermissionDenied("role " + RoleName(principal.role) + " may not call " + method);
}

Result<Principal> FleetServiceImpl::Authorize(const grpc::ServerContext& ctx, Permission permission,
                                              const char* method) {
  std::string peer = ctx.peer();
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  std::string value;
  if (it != md.end()) value.assign(it->second.data(), it->second.size());
  auto principal =
      AuthenticateBearer(aggregator_, credentials_, peer, it != md.end() ? &value : nullptr, method,
                         "pass --token-file FILE or set VIGIL_TOKEN_FILE");
  if (!principal.ok()) return principal;
  if (Status s = CheckRole(aggregator_, peer, *principal, permission, method); !s.ok()) return s;
  return principal;
}

#define VIGIL_AUTHORIZE(permission, method)             \
  auto principal = Authorize(*ctx, permission, method); \
  if (!principal.ok()) return ToGrpc(principal.status())

grpc::Status FleetServiceImpl::ListDevices(grpc::ServerContext* ctx,
                                           const v1::ListDevicesRequest* req,
                                           v1::ListDevicesResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "ListDevices");
  return Reply(fleet_.ListDevices(*req), resp);
}

grpc::Status FleetServiceImpl::GetDevice(grpc::ServerContext* ctx, const v1::GetDeviceRequest* req,
                                         v1::GetDeviceResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "GetDevice");
  return Reply(fleet_.GetDevice(*req), resp);
}

grpc::Status FleetServiceImpl::Summary(grpc::ServerContext* ctx, const v1::SummaryRequest* req,
                                       v1::SummaryResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "Summary");
  return Reply(fleet_.Summary(*req), resp);
}

grpc::Status FleetServiceImpl::ApproveDevice(grpc::ServerContext* ctx,
                                             const v1::DeviceActionRequest* req,
                                             v1::DeviceActionResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kManageDevices, "ApproveDevice");
  return Reply(fleet_.ApproveDevice(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::RevokeDevice(grpc::ServerContext* ctx,
                                            const v1::DeviceActionRequest* req,
                                            v1::DeviceActionResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kManageDevices, "RevokeDevice");
  return Reply(fleet_.RevokeDevice(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::ListAudit(grpc::ServerContext* ctx, const v1::ListAuditRequest* req,
                                         v1::ListAuditResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadAudit, "ListAudit");
  return Reply(fleet_.ListAudit(*req), resp);
}

grpc::Status FleetServiceImpl::ServerStats(grpc::ServerContext* ctx, const v1::ServerStatsRequest*,
                                           v1::ServerStatsResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "ServerStats");
  *resp = fleet_.Stats();
  return grpc::Status::OK;
}

grpc::Status FleetServiceImpl::DeviceHistory(grpc::ServerContext* ctx,
                                             const v1::DeviceHistoryRequest* req,
                                             v1::DeviceHistoryResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "DeviceHistory");
  return Reply(fleet_.DeviceHistory(*req), resp);
}

grpc::Status FleetServiceImpl::ListAlerts(grpc::ServerContext* ctx,
                                          const v1::ListAlertsRequest* req,
                                          v1::ListAlertsResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "ListAlerts");
  return Reply(fleet_.ListAlerts(*req), resp);
}

grpc::Status FleetServiceImpl::ExportEvidence(grpc::ServerContext* ctx,
                                              const v1::ExportRequest* req,
                                              grpc::ServerWriter<v1::ExportRecord>* writer) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "ExportEvidence");
  bool gone = false;
  Status s = fleet_.ExportEvidence(*req, [&](const v1::ExportRecord& rec) {
    if (ctx->IsCancelled() || !writer->Write(rec)) {
      gone = true;
      return false;
    }
    return true;
  });
  if (gone) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  return ToGrpc(s);
}

grpc::Status FleetServiceImpl::SetDeviceTags(grpc::ServerContext* ctx,
                                             const v1::SetDeviceTagsRequest* req,
                                             v1::DeviceActionResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kManageDevices, "SetDeviceTags");
  return Reply(fleet_.SetDeviceTags(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::GetPolicy(grpc::ServerContext* ctx, const v1::GetPolicyRequest* req,
                                         v1::PolicyVersionInfo* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "GetPolicy");
  return Reply(changes_.GetPolicy(*req), resp);
}

grpc::Status FleetServiceImpl::GetDevicePolicy(grpc::ServerContext* ctx,
                                               const v1::GetDevicePolicyRequest* req,
                                               v1::DevicePolicyResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "GetDevicePolicy");
  return Reply(changes_.GetDevicePolicy(*req), resp);
}

grpc::Status FleetServiceImpl::ProposePolicyChange(grpc::ServerContext* ctx,
                                                   const v1::ProposePolicyChangeRequest* req,
                                                   v1::PolicyChange* resp) {
  VIGIL_AUTHORIZE(Permission::kProposeChange, "ProposePolicyChange");
  return Reply(changes_.Propose(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::PreviewPolicyChange(grpc::ServerContext* ctx,
                                                   const v1::PolicyChangeRequest* req,
                                                   v1::PolicyImpact* resp) {
  VIGIL_AUTHORIZE(Permission::kReadAudit, "PreviewPolicyChange");
  return Reply(changes_.Preview(*req), resp);
}

grpc::Status FleetServiceImpl::ApprovePolicyChange(grpc::ServerContext* ctx,
                                                   const v1::PolicyDecisionRequest* req,
                                                   v1::PolicyChange* resp) {
  VIGIL_AUTHORIZE(Permission::kApprove, "ApprovePolicyChange");
  return Reply(changes_.Approve(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::RejectPolicyChange(grpc::ServerContext* ctx,
                                                  const v1::PolicyDecisionRequest* req,
                                                  v1::PolicyChange* resp) {
  VIGIL_AUTHORIZE(Permission::kDecide, "RejectPolicyChange");
  return Reply(changes_.Reject(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::ApplyPolicyChange(grpc::ServerContext* ctx,
                                                 const v1::PolicyChangeRequest* req,
                                                 v1::PolicyChange* resp) {
  VIGIL_AUTHORIZE(Permission::kProposeChange, "ApplyPolicyChange");
  return Reply(changes_.Apply(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::RollbackPolicy(grpc::ServerContext* ctx,
                                              const v1::RollbackPolicyRequest* req,
                                              v1::PolicyChange* resp) {
  VIGIL_AUTHORIZE(Permission::kProposeChange, "RollbackPolicy");
  return Reply(changes_.Rollback(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::ReviewPolicyChange(grpc::ServerContext* ctx,
                                                  const v1::PolicyChangeRequest* req,
                                                  v1::PolicyReview* resp) {
  VIGIL_AUTHORIZE(Permission::kReadAudit, "ReviewPolicyChange");
  return Reply(changes_.Review(*req), resp);
}

grpc::Status FleetServiceImpl::GetPolicyChange(grpc::ServerContext* ctx,
                                               const v1::PolicyChangeRequest* req,
                                               v1::PolicyChange* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "GetPolicyChange");
  return Reply(changes_.GetChange(*req), resp);
}

grpc::Status FleetServiceImpl::ListPolicyChanges(grpc::ServerContext* ctx,
                                                 const v1::ListPolicyChangesRequest* req,
                                                 v1::ListPolicyChangesResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "ListPolicyChanges");
  return Reply(changes_.ListChanges(*req), resp);
}

grpc::Status FleetServiceImpl::DiffPolicyVersions(grpc::ServerContext* ctx,
                                                  const v1::DiffPolicyVersionsRequest* req,
                                                  v1::DiffPolicyVersionsResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "DiffPolicyVersions");
  return Reply(changes_.Diff(*req), resp);
}

grpc::Status FleetServiceImpl::RequestException(grpc::ServerContext* ctx,
                                                const v1::RequestExceptionRequest* req,
                                                v1::PolicyException* resp) {
  VIGIL_AUTHORIZE(Permission::kProposeChange, "RequestException");
  return Reply(changes_.RequestException(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::ApproveException(grpc::ServerContext* ctx,
                                                const v1::ExceptionDecisionRequest* req,
                                                v1::PolicyException* resp) {
  VIGIL_AUTHORIZE(Permission::kApprove, "ApproveException");
  return Reply(changes_.ApproveException(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::RejectException(grpc::ServerContext* ctx,
                                               const v1::ExceptionDecisionRequest* req,
                                               v1::PolicyException* resp) {
  VIGIL_AUTHORIZE(Permission::kDecide, "RejectException");
  return Reply(changes_.RejectException(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::RevokeException(grpc::ServerContext* ctx,
                                               const v1::ExceptionDecisionRequest* req,
                                               v1::PolicyException* resp) {
  VIGIL_AUTHORIZE(Permission::kDecide, "RevokeException");
  return Reply(changes_.RevokeException(*req, principal->Actor()), resp);
}

grpc::Status FleetServiceImpl::ListExceptions(grpc::ServerContext* ctx,
                                              const v1::ListExceptionsRequest* req,
                                              v1::ListExceptionsResponse* resp) {
  VIGIL_AUTHORIZE(Permission::kReadFleet, "ListExceptions");
  return Reply(changes_.ListExceptions(*req), resp);
}

}  // namespace vigil::server

// The gRPC layer: thin. Each method reads who is calling (peer address, verified client
// certificate, bearer token), calls the domain (Aggregator, Fleet) and converts Status to
// grpc::Status. Never throws. FleetService calls need `authorization: Bearer vgt_...` metadata
// carrying a token whose role allows the method.
#pragma once

#include "server/aggregator.h"
#include "server/fleet.h"
#include "server/metrics.h"
#include "server/policy_changes.h"
#include "vigil/v1/agent_service.grpc.pb.h"
#include "vigil/v1/fleet_service.grpc.pb.h"

namespace vigil::server {

grpc::Status ToGrpc(const Status& s);

class AgentServiceImpl final : public v1::AgentService::Service {
 public:
  // `report_duration`, when given, observes the seconds each Report call takes (/metrics).
  explicit AgentServiceImpl(Aggregator& aggregator, Histogram* report_duration = nullptr)
      : aggregator_(aggregator), report_duration_(report_duration) {}
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest* req,
                      v1::EnrollResponse* resp) override;
  grpc::Status Report(grpc::ServerContext*, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override;
  grpc::Status RotateKey(grpc::ServerContext*, const v1::RotateKeyRequest* req,
                         v1::RotateKeyResponse* resp) override;

 private:
  Aggregator& aggregator_;
  Histogram* report_duration_;
};

// The peer address and the verified client certificate's common name of a call.
CallInfo CallInfoOf(const grpc::ServerContext& ctx);

// FleetService's authentication, shared with the HTTPS API (server/http_api.h) so both count,
// rate-limit and audit failures alike. AuthenticateBearer: refused (ResourceExhausted) while
// `peer` has failed too often; then `authorization` ("Bearer TOKEN"; nullptr when absent) must
// carry a valid token (Unauthenticated, or PermissionDenied when expired or revoked).
// `missing_hint` says how to pass one. CheckRole: PermissionDenied unless the role allows
// `permission`. Every failure goes to the aggregator's counters and audit log, naming `method`.
Result<Principal> AuthenticateBearer(Aggregator& aggregator, const Credentials& credentials,
                                     const std::string& peer, const std::string* authorization,
                                     const std::string& method, const std::string& missing_hint);
Status CheckRole(Aggregator& aggregator, const std::string& peer, const Principal& principal,
                 Permission permission, const std::string& method);

class FleetServiceImpl final : public v1::FleetService::Service {
 public:
  FleetServiceImpl(Fleet& fleet, PolicyChanges& changes, Credentials& credentials,
                   Aggregator& aggregator)
      : fleet_(fleet), changes_(changes), credentials_(credentials), aggregator_(aggregator) {}
  grpc::Status ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest* req,
                           v1::ListDevicesResponse* resp) override;
  grpc::Status GetDevice(grpc::ServerContext*, const v1::GetDeviceRequest* req,
                         v1::GetDeviceResponse* resp) override;
  grpc::Status Summary(grpc::ServerContext*, const v1::SummaryRequest* req,
                       v1::SummaryResponse* resp) override;
  grpc::Status ApproveDevice(grpc::ServerContext*, const v1::DeviceActionRequest* req,
                             v1::DeviceActionResponse* resp) override;
  grpc::Status RevokeDevice(grpc::ServerContext*, const v1::DeviceActionRequest* req,
                            v1::DeviceActionResponse* resp) override;
  grpc::Status ListAudit(grpc::ServerContext*, const v1::ListAuditRequest* req,
                         v1::ListAuditResponse* resp) override;
  grpc::Status ServerStats(grpc::ServerContext*, const v1::ServerStatsRequest* req,
                           v1::ServerStatsResponse* resp) override;
  grpc::Status DeviceHistory(grpc::ServerContext*, const v1::DeviceHistoryRequest* req,
                             v1::DeviceHistoryResponse* resp) override;
  grpc::Status ListAlerts(grpc::ServerContext*, const v1::ListAlertsRequest* req,
                          v1::ListAlertsResponse* resp) override;
  grpc::Status ExportEvidence(grpc::ServerContext*, const v1::ExportRequest* req,
                              grpc::ServerWriter<v1::ExportRecord>* writer) override;
  grpc::Status SetDeviceTags(grpc::ServerContext*, const v1::SetDeviceTagsRequest* req,
                             v1::DeviceActionResponse* resp) override;
  grpc::Status GetPolicy(grpc::ServerContext*, const v1::GetPolicyRequest* req,
                         v1::PolicyVersionInfo* resp) override;
  grpc::Status GetDevicePolicy(grpc::ServerContext*, const v1::GetDevicePolicyRequest* req,
                               v1::DevicePolicyResponse* resp) override;
  grpc::Status ProposePolicyChange(grpc::ServerContext*, const v1::ProposePolicyChangeRequest* req,
                                   v1::PolicyChange* resp) override;
  grpc::Status PreviewPolicyChange(grpc::ServerContext*, const v1::PolicyChangeRequest* req,
                                   v1::PolicyImpact* resp) override;
  grpc::Status ApprovePolicyChange(grpc::ServerContext*, const v1::PolicyDecisionRequest* req,
                                   v1::PolicyChange* resp) override;
  grpc::Status RejectPolicyChange(grpc::ServerContext*, const v1::PolicyDecisionRequest* req,
                                  v1::PolicyChange* resp) override;
  grpc::Status ApplyPolicyChange(grpc::ServerContext*, const v1::PolicyChangeRequest* req,
                                 v1::PolicyChange* resp) override;
  grpc::Status RollbackPolicy(grpc::ServerContext*, const v1::RollbackPolicyRequest* req,
                              v1::PolicyChange* resp) override;
  grpc::Status ReviewPolicyChange(grpc::ServerContext*, const v1::PolicyChangeRequest* req,
                                  v1::PolicyReview* resp) override;
  grpc::Status GetPolicyChange(grpc::ServerContext*, const v1::PolicyChangeRequest* req,
                               v1::PolicyChange* resp) override;
  grpc::Status ListPolicyChanges(grpc::ServerContext*, const v1::ListPolicyChangesRequest* req,
                                 v1::ListPolicyChangesResponse* resp) override;
  grpc::Status DiffPolicyVersions(grpc::ServerContext*, const v1::DiffPolicyVersionsRequest* req,
                                  v1::DiffPolicyVersionsResponse* resp) override;
  grpc::Status RequestException(grpc::ServerContext*, const v1::RequestExceptionRequest* req,
                                v1::PolicyException* resp) override;
  grpc::Status ApproveException(grpc::ServerContext*, const v1::ExceptionDecisionRequest* req,
                                v1::PolicyException* resp) override;
  grpc::Status RejectException(grpc::ServerContext*, const v1::ExceptionDecisionRequest* req,
                               v1::PolicyException* resp) override;
  grpc::Status RevokeException(grpc::ServerContext*, const v1::ExceptionDecisionRequest* req,
                               v1::PolicyException* resp) override;
  grpc::Status ListExceptions(grpc::ServerContext*, const v1::ListExceptionsRequest* req,
                              v1::ListExceptionsResponse* resp) override;

 private:
  // The caller's principal when its token is valid and its role allows `permission`.
  Result<Principal> Authorize(const grpc::ServerContext& ctx, Permission permission,
                              const char* method);

  Fleet& fleet_;
  PolicyChanges& changes_;
  Credentials& credentials_;
  Aggregator& aggregator_;
};

}  // namespace vigil::server

// Fleet: the security team's side — device lists, one device's checks and history, summaries,
// approval and revocation, the audit log and counters. Effective status is derived here:
// REVOKED over TAMPERED (sticky) over PENDING over UNKNOWN over STALE (no attestation within the
// policy's check-in window, judged with the injected clock) over the last verdict.
// Authorization happens in the service layer; methods that change state take the actor to record.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "server/limits.h"
#include "server/policy_state.h"
#include "server/store.h"
#include "vigil/v1/fleet_service.pb.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::server {

google::protobuf::Timestamp FromMillis(int64_t ms);
int64_t ToMillis(const google::protobuf::Timestamp& t);

// The API form of a stored alert, with its idempotency key "vigil-alert-INSTANCE-ID" (INSTANCE:
// Store::InstanceId, so a restored or new database never repeats a key).
v1::Alert ToAlert(const AlertRecord& alert, const std::string& instance);

// What the latest attestation says is wrong with the agent itself, as opposed to the device's
// compliance: checks that could not collect evidence, failed reports before it arrived,
// attestations dropped while offline, the agent's last error. Empty when the agent is healthy.
std::vector<std::string> AgentProblems(const v1::Attestation& latest);

class Fleet {
 public:
  Fleet(Store& store, const Clock& clock, PolicyState& policy, Counters& counters);

  Result<v1::ListDevicesResponse> ListDevices(const v1::ListDevicesRequest& req);
  Result<v1::GetDeviceResponse> GetDevice(const v1::GetDeviceRequest& req);
  Result<v1::SummaryResponse> Summary(const v1::SummaryRequest& req);
  Result<v1::DeviceActionResponse> ApproveDevice(const v1::DeviceActionRequest& req,
                                                 const std::string& actor);
  Result<v1::DeviceActionResponse> RevokeDevice(const v1::DeviceActionRequest& req,
                                                const std::string& actor);
  Result<v1::ListAuditResponse> ListAudit(const v1::ListAuditRequest& req);
  v1::ServerStatsResponse Stats() const;
  Result<v1::DeviceHistoryResponse> DeviceHistory(const v1::DeviceHistoryRequest& req);
  Result<v1::ListAlertsResponse> ListAlerts(const v1::ListAlertsRequest& req);
  // Calls `emit` for each record in order; stops early (OK) when it returns false.
  Status ExportEvidence(const v1::ExportRequest& req,
                        const std::function<bool(const v1::ExportRecord&)>& emit);
  Result<v1::DeviceActionResponse> SetDeviceTags(const v1::SetDeviceTagsRequest& req,
                                                 const std::string& actor);
  // The configured alert sinks' types by name, for ListAlerts ("webhook", "slack", "syslog").
  void SetSinkTypes(std::map<std::string, std::string> types) { sink_types_ = std::move(types); }

  v1::DeviceStatus EffectiveStatus(const DeviceRecord& d) const;

 private:
  int64_t StaleBefore() const;
  v1::DeviceSummary ToSummary(const DeviceRecord& d) const;
  Result<v1::DeviceActionResponse> Summarize(const std::string& device_id);

  Store& store_;
  const Clock& clock_;
  PolicyState& policy_;
  Counters& counters_;
  std::map<std::string, std::string> sink_types_;
};

}  // namespace vigil::server

// vigilctl's calls to FleetService that take more than one request: paging through devices,
// history, alerts, the audit log and the policy changes until the server says there is no more (or
// --limit items are in), and streaming the evidence export into an Output. Each call gets a fresh
// ClientContext from `context` (deadline and token). A server whose paging does not advance is
// reported as an error rather than followed forever. Tested against an in-process fake FleetService
// on port 0 (server/vigilctl_test.cc).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/vigilctl_output.h"
#include "vigil/v1/fleet_service.grpc.pb.h"

namespace vigil::ctl {

struct FleetCalls {
  v1::FleetService::StubInterface& stub;
  std::function<std::unique_ptr<grpc::ClientContext>()> context;
  uint32_t page_size = 1000;  // items asked for per call
};

// Every device matching `req`'s filters (at most `limit`), in the server's order.
grpc::Status FetchDevices(const FleetCalls& fleet, v1::ListDevicesRequest req,
                          std::optional<uint64_t> limit, v1::ListDevicesResponse* out);
// A device's history, newest first (at most `limit` entries).
grpc::Status FetchHistory(const FleetCalls& fleet, v1::DeviceHistoryRequest req,
                          std::optional<uint64_t> limit, v1::DeviceHistoryResponse* out);
// Alerts after req.after_id(), oldest first (at most `limit`), and the sinks' latest state.
grpc::Status FetchAlerts(const FleetCalls& fleet, v1::ListAlertsRequest req,
                         std::optional<uint64_t> limit, v1::ListAlertsResponse* out);
// The whole audit log, oldest first.
grpc::Status FetchAudit(const FleetCalls& fleet, std::vector<v1::AuditEntry>* out);
// Every policy change request, oldest first (after_id paging until a short page), and the
// current version from the last page.
grpc::Status FetchPolicyChanges(const FleetCalls& fleet, v1::ListPolicyChangesResponse* out);

struct ExportResult {
  grpc::Status rpc;  // how the stream ended
  Status write;      // the first failure writing to the Output (the stream is then cancelled)
  uint64_t records = 0;
  uint64_t rows = 0;  // CSV rows or JSON lines written (the CSV header not counted)
  bool ok() const { return rpc.ok() && write.ok(); }
};

// Streams ExportEvidence into `out` as CSV (header first) or JSON Lines ("csv" or "json"). Does
// not Commit: the caller does that only when the result is ok.
ExportResult StreamExport(const FleetCalls& fleet, const v1::ExportRequest& req,
                          const std::string& format, Output& out);

}  // namespace vigil::ctl

#include "server/vigilctl_fetch.h"

#include <algorithm>

#include "proto/json.h"

namespace vigil::ctl {
namespace {

grpc::Status NoProgress(const std::string& rpc) {
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      rpc + ": the server's paging did not advance; stopped rather than loop");
}

// How many to ask for next: a page, or what is left of the limit.
uint32_t Want(const FleetCalls& fleet, std::optional<uint64_t> limit, int have) {
  uint64_t left =
      limit ? *limit - std::min<uint64_t>(*limit, static_cast<uint64_t>(have)) : fleet.page_size;
  return static_cast<uint32_t>(std::min<uint64_t>(left, fleet.page_size));
}

bool Full(std::optional<uint64_t> limit, int have) {
  return limit && static_cast<uint64_t>(have) >= *limit;
}

}  // namespace

grpc::Status FetchDevices(const FleetCalls& fleet, v1::ListDevicesRequest req,
                          std::optional<uint64_t> limit, v1::ListDevicesResponse* out) {
  std::string token = req.page_token();
  for (;;) {
    req.set_limit(Want(fleet, limit, out->devices_size()));
    req.set_page_token(token);
    v1::ListDevicesResponse page;
    auto ctx = fleet.context();
    grpc::Status s = fleet.stub.ListDevices(ctx.get(), req, &page);
    if (!s.ok()) return s;
    for (auto& d : *page.mutable_devices()) {
      if (Full(limit, out->devices_size())) break;
      *out->add_devices() = std::move(d);
    }
    if (page.next_page_token().empty() || Full(limit, out->devices_size())) break;
    // Device ids are the tokens; their order is the database's collation, so only require
    // that the token moved.
    if (page.next_page_token() == token) return NoProgress("ListDevices");
    token = page.next_page_token();
  }
  return grpc::Status::OK;
}

grpc::Status FetchHistory(const FleetCalls& fleet, v1::DeviceHistoryRequest req,
                          std::optional<uint64_t> limit, v1::DeviceHistoryResponse* out) {
  uint64_t before = req.before_sequence();
  for (;;) {
    req.set_limit(Want(fleet, limit, out->entries_size()));
    req.set_before_sequence(before);
    v1::DeviceHistoryResponse page;
    auto ctx = fleet.context();
    grpc::Status s = fleet.stub.DeviceHistory(ctx.get(), req, &page);
    if (!s.ok()) return s;
    for (auto& e : *page.mutable_entries()) {
      if (Full(limit, out->entries_size())) break;
      *out->add_entries() = std::move(e);
    }
    if (page.next_before_sequence() == 0 || Full(limit, out->entries_size())) break;
    if (before != 0 && page.next_before_sequence() >= before) return NoProgress("DeviceHistory");
    before = page.next_before_sequence();
  }
  return grpc::Status::OK;
}

grpc::Status FetchAlerts(const FleetCalls& fleet, v1::ListAlertsRequest req,
                         std::optional<uint64_t> limit, v1::ListAlertsResponse* out) {
  for (;;) {
    uint32_t asked = Want(fleet, limit, out->alerts_size());
    req.set_limit(asked);
    v1::ListAlertsResponse page;
    auto ctx = fleet.context();
    grpc::Status s = fleet.stub.ListAlerts(ctx.get(), req, &page);
    if (!s.ok()) return s;
    *out->mutable_sinks() = std::move(*page.mutable_sinks());  // the latest state wins
    uint64_t last = req.after_id();
    for (auto& a : *page.mutable_alerts()) {
      if (Full(limit, out->alerts_size())) break;
      if (a.id() <= last) return NoProgress("ListAlerts");
      last = a.id();
      *out->add_alerts() = std::move(a);
    }
    // No token here: a short page is the last one.
    if (static_cast<uint32_t>(page.alerts_size()) < asked || Full(limit, out->alerts_size())) {
      break;
    }
    req.set_after_id(last);
  }
  return grpc::Status::OK;
}

grpc::Status FetchAudit(const FleetCalls& fleet, std::vector<v1::AuditEntry>* out) {
  constexpr uint32_t kAuditPage = 10000;  // the server's maximum
  uint64_t after = 0;
  for (;;) {
    v1::ListAuditRequest req;
    req.set_after_id(after);
    req.set_limit(kAuditPage);
    v1::ListAuditResponse resp;
    auto ctx = fleet.context();
    grpc::Status s = fleet.stub.ListAudit(ctx.get(), req, &resp);
    if (!s.ok()) return s;
    for (auto& e : *resp.mutable_entries()) out->push_back(std::move(e));
    if (resp.entries_size() < static_cast<int>(kAuditPage)) break;
    if (out->back().id() <= after) return NoProgress("ListAudit");
    after = out->back().id();
  }
  return grpc::Status::OK;
}

grpc::Status FetchPolicyChanges(const FleetCalls& fleet, v1::ListPolicyChangesResponse* out) {
  constexpr uint32_t kMaxPage = 1000;  // the server's maximum
  const uint32_t page_size = std::clamp<uint32_t>(fleet.page_size, 1, kMaxPage);
  uint64_t after = 0;
  for (;;) {
    v1::ListPolicyChangesRequest req;
    req.set_after_id(after);
    req.set_limit(page_size);
    v1::ListPolicyChangesResponse page;
    auto ctx = fleet.context();
    grpc::Status s = fleet.stub.ListPolicyChanges(ctx.get(), req, &page);
    if (!s.ok()) return s;
    out->set_current_version(page.current_version());  // the latest answer wins
    for (auto& c : *page.mutable_changes()) {
      if (c.id() <= after) return NoProgress("ListPolicyChanges");
      after = c.id();
      *out->add_changes() = std::move(c);
    }
    if (static_cast<uint32_t>(page.changes_size()) < page_size) break;
  }
  return grpc::Status::OK;
}

ExportResult StreamExport(const FleetCalls& fleet, const v1::ExportRequest& req,
                          const std::string& format, Output& out) {
  ExportResult result;
  const bool csv = format == "csv";
  if (csv) result.write = out.Write(CsvRecord(ExportCsvHeader()));
  auto ctx = fleet.context();
  auto reader = fleet.stub.ExportEvidence(ctx.get(), req);
  v1::ExportRecord rec;
  while (result.write.ok() && reader->Read(&rec)) {
    ++result.records;
    std::string chunk;
    if (csv) {
      for (const auto& r : ExportCsvRows(rec)) {
        chunk += CsvRecord(r);
        ++result.rows;
      }
    } else {
      chunk = ToJson(rec, /*pretty=*/false) + "\n";
      ++result.rows;
    }
    result.write = out.Write(chunk);
  }
  if (!result.write.ok()) {
    ctx->TryCancel();
    while (reader->Read(&rec)) {
    }
  }
  result.rpc = reader->Finish();
  return result;
}

}  // namespace vigil::ctl

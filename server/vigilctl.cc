// vigilctl: the security team's command line for fleet status, alerts, the auditors' evidence
// report, policy changes and exceptions. The composition root: parses the command line
// (vigilctl_cli.h), connects, calls FleetService (paging until done), and prints through
// vigilctl_output.h. Usage and exit codes: `vigilctl --help`, docs/vigilctl.md.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include "common/clock.h"
#include "common/files.h"
#include "proto/audit_chain.h"
#include "proto/json.h"
#include "proto/signing.h"
#include "server/vigilctl_cli.h"
#include "server/vigilctl_fetch.h"
#include "server/vigilctl_output.h"
#include "vigil/v1/fleet_service.grpc.pb.h"

namespace vigil::ctl {
namespace {

// The server, the credentials, and a fresh per-call context for each request.
struct Connection {
  std::string server;
  std::string token;
  std::chrono::seconds timeout{10};
  std::unique_ptr<v1::FleetService::Stub> stub;

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }
  FleetCalls Calls() const {
    return FleetCalls{*stub, [this] { return Context(); }};
  }
};

int UsageError(const Status& st) {
  std::cerr << "vigilctl: " << st.message() << "\n";
  return kExitUsage;
}

int Failed(const std::string& msg) {
  std::cerr << "vigilctl: " << msg << "\n";
  return kExitFailed;
}

int RpcFailed(const grpc::Status& s, const Connection& conn, const std::string& rpc) {
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      std::cerr << "vigilctl: " << s.error_message() << "\n";
      return kExitNotFound;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      std::cerr << "vigilctl: " << conn.server << ": " << s.error_message() << "\n";
      return kExitUnauthorized;
    case grpc::StatusCode::INVALID_ARGUMENT:
      std::cerr << "vigilctl: the server refused the request: " << s.error_message() << "\n";
      return kExitUsage;
    case grpc::StatusCode::FAILED_PRECONDITION:
      // The state does not allow it (an unapproved change, a moved base version, ...).
      std::cerr << "vigilctl: " << conn.server << " refused " << rpc << ": " << s.error_message()
                << "\n";
      return kExitFailed;
    case grpc::StatusCode::UNIMPLEMENTED:
      std::cerr << "vigilctl: " << conn.server << " does not implement " << rpc
                << " (a vigil-server older than this vigilctl?)\n";
      return kExitFailed;
    default:
      break;
  }
  std::cerr << "vigilctl: " << conn.server << ": " << rpc << ": " << s.error_message()
            << " (gRPC code " << s.error_code() << ")\n";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::cerr << "is vigil-server running there? set --server or VIGIL_SERVER\n";
  }
  return kExitFailed;
}

std::optional<std::string> FlagOrEnv(const Invocation& inv, const std::string& flag,
                                     const char* env) {
  if (auto v = inv.Get(flag)) return v;
  if (const char* e = std::getenv(env)) return std::string(e);
  return std::nullopt;
}

// Builds the channel from --server/--ca/--insecure/--token-file (or their environment
// variables). Errors are usage errors.
Result<Connection> Connect(const Invocation& inv) {
  Connection conn;
  conn.server = FlagOrEnv(inv, "server", "VIGIL_SERVER").value_or("127.0.0.1:7400");
  uint64_t secs = inv.command->name == "export" ? 3600 : 10;
  if (auto t = inv.Get("timeout")) {
    auto v = ParsePositive("timeout", *t);
    if (!v.ok()) return v.status();
    secs = *v;
  }
  conn.timeout = std::chrono::seconds(static_cast<int64_t>(std::min<uint64_t>(secs, 1u << 30)));
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (inv.Has("insecure")) {
    // Plaintext would carry the token in the clear: only to this machine.
    std::string host = conn.server.substr(0, conn.server.rfind(':'));
    if (host != "localhost" && host.rfind("127.", 0) != 0 && host != "[::1]") {
      return Status::InvalidArgument(
          "--insecure is only for a server on this machine (127.0.0.1, localhost)");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions tls;
    if (auto ca = FlagOrEnv(inv, "ca", "VIGIL_CA")) {
      auto pem = ReadWholeFile(*ca, 1u << 20);
      if (!pem.ok()) return Status::InvalidArgument("--ca: " + pem.status().message());
      tls.pem_root_certs = *pem;
    }
    creds = grpc::SslCredentials(tls);
  }
  if (auto file = FlagOrEnv(inv, "token-file", "VIGIL_TOKEN_FILE")) {
    auto t = ReadSecretFile(*file);
    if (!t.ok()) return Status::InvalidArgument("token file: " + t.status().message());
    conn.token = *t;
  } else if (const char* env_token = std::getenv("VIGIL_TOKEN")) {
    conn.token = env_token;
  }
  conn.stub = v1::FleetService::NewStub(grpc::CreateChannel(conn.server, creds));
  return conn;
}

// One JSON document and exactly one newline after it.
void PrintJson(const google::protobuf::Message& msg) {
  std::string json = ToJson(msg);
  while (!json.empty() && json.back() == '\n') json.pop_back();
  std::cout << json << "\n";
}

Style StyleOf(const std::string& format) { return format == "csv" ? Style::kCsv : Style::kTable; }

void PrintTable(const Table& t, const std::string& format) {
  std::cout << (format == "csv" ? FormatCsv(t) : FormatTable(t));
}

int Devices(const Invocation& inv, const Connection& conn, int64_t now_ms) {
  auto req = DevicesRequest(inv, now_ms);
  if (!req.ok()) return UsageError(req.status());
  v1::ListDevicesResponse all;
  grpc::Status s = FetchDevices(conn.Calls(), *req, *LimitFlag(inv), &all);
  if (!s.ok()) return RpcFailed(s, conn, "ListDevices");
  std::string format = inv.Format();
  if (format == "json") {
    PrintJson(all);
  } else {
    PrintTable(DevicesTable(all.devices(), StyleOf(format)), format);
  }
  return kExitOk;
}

int History(const Invocation& inv, const Connection& conn, int64_t now_ms) {
  auto req = HistoryRequest(inv, now_ms);
  if (!req.ok()) return UsageError(req.status());
  v1::DeviceHistoryResponse all;
  grpc::Status s = FetchHistory(conn.Calls(), *req, *LimitFlag(inv), &all);
  if (!s.ok()) return RpcFailed(s, conn, "DeviceHistory");
  std::string format = inv.Format();
  if (format == "json") {
    PrintJson(all);
  } else {
    PrintTable(HistoryTable(all.entries(), StyleOf(format)), format);
  }
  return kExitOk;
}

int Alerts(const Invocation& inv, const Connection& conn) {
  auto req = AlertsRequest(inv);
  if (!req.ok()) return UsageError(req.status());
  v1::ListAlertsResponse all;
  grpc::Status s = FetchAlerts(conn.Calls(), *req, *LimitFlag(inv), &all);
  if (!s.ok()) return RpcFailed(s, conn, "ListAlerts");
  std::string format = inv.Format();
  if (format == "json") {
    PrintJson(all);
  } else if (format == "csv") {
    PrintTable(AlertsTable(all.alerts(), Style::kCsv), format);
  } else {
    std::cout << FormatTable(AlertsTable(all.alerts(), Style::kTable)) << "\n";
    if (all.sinks_size() == 0) {
      std::cout << "no alert sinks configured (alerts are only kept on the server)\n";
    } else {
      std::cout << FormatTable(SinksTable(all.sinks()));
    }
  }
  return kExitOk;
}

int Export(const Invocation& inv, const Connection& conn, int64_t now_ms) {
  auto req = ExportRequestFromFlags(inv, now_ms);
  if (!req.ok()) return UsageError(req.status());
  const std::string format = inv.Format();
  std::unique_ptr<Output> out;
  auto path = inv.Get("output");
  if (path) {
    // Created before the call so an unwritable directory fails before a long stream.
    auto file = AtomicFileOutput(*path);
    if (!file.ok()) return Failed("--output: " + file.status().message());
    out = std::move(*file);
  } else {
    out = StdoutOutput();
  }
  ExportResult r = StreamExport(conn.Calls(), *req, format, *out);
  int rc = kExitOk;
  if (!r.write.ok()) {
    rc = Failed(r.write.message());
  } else if (!r.rpc.ok()) {
    rc = RpcFailed(r.rpc, conn, "ExportEvidence");
  } else if (auto st = out->Commit(); !st.ok()) {
    rc = Failed(st.message());
  }
  if (path && rc != kExitOk) {
    std::cerr << "vigilctl: " << *path << " was left as it was\n";
  } else if (path) {
    std::cerr << "vigilctl: exported " << r.records << " attestations (" << r.rows << " "
              << (format == "csv" ? "rows" : "lines") << ") to " << *path << "\n";
  }
  return rc;
}

int DeviceAction(const Invocation& inv, const Connection& conn) {
  const std::string name(inv.command->name);
  v1::DeviceActionResponse resp;
  grpc::Status s;
  auto ctx = conn.Context();
  std::string rpc;
  if (name == "device tag") {
    auto req = TagsRequest(inv);
    if (!req.ok()) return UsageError(req.status());
    rpc = "SetDeviceTags";
    s = conn.stub->SetDeviceTags(ctx.get(), *req, &resp);
  } else {
    v1::DeviceActionRequest req;
    req.set_device_id(inv.args.at(0));
    req.set_reason(inv.GetOr("reason", ""));
    rpc = name == "device approve" ? "ApproveDevice" : "RevokeDevice";
    s = name == "device approve" ? conn.stub->ApproveDevice(ctx.get(), req, &resp)
                                 : conn.stub->RevokeDevice(ctx.get(), req, &resp);
  }
  if (!s.ok()) return RpcFailed(s, conn, rpc);
  if (inv.Format() == "json") {
    PrintJson(resp);
  } else if (name == "device tag") {
    std::string tags;
    for (const auto& t : resp.device().tags()) tags += (tags.empty() ? "" : ",") + t;
    std::cout << Sanitize(resp.device().device_id()) << " tags: " << (tags.empty() ? "-" : tags)
              << "\n";
  } else {
    std::cout << Sanitize(resp.device().device_id()) << " "
              << v1::DeviceStatus_Name(resp.device().status()) << "\n";
  }
  return kExitOk;
}

// Makes one call and prints its response: the protobuf JSON mapping with --format json, else
// text(response).
template <typename Resp, typename Call, typename Text>
int CallAndPrint(const Invocation& inv, const Connection& conn, const std::string& rpc, Call call,
                 Text text) {
  Resp resp;
  auto ctx = conn.Context();
  grpc::Status s = call(ctx.get(), &resp);
  if (!s.ok()) return RpcFailed(s, conn, rpc);
  if (inv.Format() == "json") {
    PrintJson(resp);
  } else {
    std::cout << text(resp);
  }
  return kExitOk;
}

int DevicePolicy(const Invocation& inv, const Connection& conn) {
  v1::GetDevicePolicyRequest req;
  req.set_device_id(inv.args.at(0));
  return CallAndPrint<v1::DevicePolicyResponse>(
      inv, conn, "GetDevicePolicy",
      [&](grpc::ClientContext* ctx, v1::DevicePolicyResponse* r) {
        return conn.stub->GetDevicePolicy(ctx, req, r);
      },
      DevicePolicyText);
}

int Device(const Invocation& inv, const Connection& conn) {
  if (inv.Has("policy")) return DevicePolicy(inv, conn);
  v1::GetDeviceRequest req;
  req.set_device_id(inv.args.at(0));
  if (auto h = inv.Get("history")) {
    auto n = ParsePositive("history", *h);
    if (!n.ok()) return UsageError(n.status());
    req.set_history_limit(static_cast<uint32_t>(std::min<uint64_t>(*n, 1000)));
  } else {
    req.set_history_limit(10);
  }
  v1::GetDeviceResponse resp;
  auto ctx = conn.Context();
  grpc::Status s = conn.stub->GetDevice(ctx.get(), req, &resp);
  if (!s.ok()) return RpcFailed(s, conn, "GetDevice");
  if (inv.Format() == "json") {
    PrintJson(resp);
  } else {
    std::cout << DeviceDetail(resp);
  }
  return kExitOk;
}

int Audit(const Invocation& inv, const Connection& conn) {
  const bool verify = inv.command->name == "audit verify";
  uint64_t limit = 100;
  if (auto l = inv.Get("limit")) {
    auto n = ParsePositive("limit", *l);
    if (!n.ok()) return UsageError(n.status());
    limit = *n;
  }
  // The whole log: verification needs every entry from the first.
  std::vector<v1::AuditEntry> entries;
  grpc::Status s = FetchAudit(conn.Calls(), &entries);
  if (!s.ok()) return RpcFailed(s, conn, "ListAudit");
  if (verify) {
    auto check = audit::VerifyChain(entries, std::string(audit::kHashSize, '\0'));
    if (!check.ok()) {
      std::cerr << "vigilctl: the audit log does NOT verify: " << check.status().message() << "\n";
      return kExitAuditBroken;
    }
    if (auto expect = inv.Get("expect-head")) {
      bool seen = false;
      for (const auto& e : entries) seen = seen || signing::Hex(e.hash()) == *expect;
      if (!seen) {
        std::cerr << "vigilctl: the audit log does NOT contain the recorded head " << *expect
                  << " (entries were removed or the log was rewritten)\n";
        return kExitAuditBroken;
      }
    }
    std::cout << "audit log verified: " << check->checked << " entries, head "
              << signing::Hex(check->head) << "\n";
    return kExitOk;
  }
  if (entries.size() > limit) {
    entries.erase(entries.begin(), entries.end() - static_cast<std::ptrdiff_t>(limit));
  }
  std::string format = inv.Format();
  if (format == "json") {
    v1::ListAuditResponse out;
    for (auto& e : entries) *out.add_entries() = std::move(e);
    PrintJson(out);
  } else {
    PrintTable(AuditTable(entries, StyleOf(format)), format);
  }
  return kExitOk;
}

int Summary(const Invocation& inv, const Connection& conn) {
  v1::SummaryResponse resp;
  auto ctx = conn.Context();
  grpc::Status s = conn.stub->Summary(ctx.get(), v1::SummaryRequest(), &resp);
  if (!s.ok()) return RpcFailed(s, conn, "Summary");
  std::string format = inv.Format();
  if (format == "json") {
    PrintJson(resp);
    return kExitOk;
  }
  PrintTable(SummaryTable(resp, StyleOf(format)), format);
  if (format == "table") std::cout << "policy " << Sanitize(resp.policy_version()) << "\n";
  return kExitOk;
}

int Stats(const Invocation& inv, const Connection& conn) {
  v1::ServerStatsResponse resp;
  auto ctx = conn.Context();
  grpc::Status s = conn.stub->ServerStats(ctx.get(), v1::ServerStatsRequest(), &resp);
  if (!s.ok()) return RpcFailed(s, conn, "ServerStats");
  std::string format = inv.Format();
  if (format == "json") {
    PrintJson(resp);
  } else {
    PrintTable(StatsTable(resp, StyleOf(format)), format);
  }
  return kExitOk;
}

int PolicyPropose(const Invocation& inv, const Connection& conn) {
  const std::string path = inv.GetOr("file", "");
  auto text = ReadWholeFile(path, 1u << 20);
  if (!text.ok()) return UsageError(text.status().Prefixed("--file: "));
  // Parsed and validated before anything is sent.
  auto req = ProposeRequest(inv, *text);
  if (!req.ok()) return UsageError(req.status());
  return CallAndPrint<v1::PolicyChange>(
      inv, conn, "ProposePolicyChange",
      [&](grpc::ClientContext* ctx, v1::PolicyChange* r) {
        return conn.stub->ProposePolicyChange(ctx, *req, r);
      },
      ProposedText);
}

int PolicyHistory(const Invocation& inv, const Connection& conn) {
  v1::ListPolicyChangesResponse all;
  grpc::Status s = FetchPolicyChanges(conn.Calls(), &all);
  if (!s.ok()) return RpcFailed(s, conn, "ListPolicyChanges");
  std::string format = inv.Format();
  if (format == "json") {
    PrintJson(all);
  } else {
    PrintTable(PolicyChangesTable(all, StyleOf(format)), format);
  }
  return kExitOk;
}

int Policy(const Invocation& inv, const Connection& conn) {
  const std::string_view name = inv.command->name;
  auto* stub = conn.stub.get();
  using Ctx = grpc::ClientContext;
  if (name == "policy show") {
    auto req = PolicyShowRequest(inv);
    if (!req.ok()) return UsageError(req.status());
    return CallAndPrint<v1::PolicyVersionInfo>(
        inv, conn, "GetPolicy",
        [&](Ctx* ctx, v1::PolicyVersionInfo* r) { return stub->GetPolicy(ctx, *req, r); },
        PolicyVersionText);
  }
  if (name == "policy propose") return PolicyPropose(inv, conn);
  if (name == "policy history") return PolicyHistory(inv, conn);
  if (name == "policy rollback") {
    auto req = RollbackRequest(inv);
    if (!req.ok()) return UsageError(req.status());
    return CallAndPrint<v1::PolicyChange>(
        inv, conn, "RollbackPolicy",
        [&](Ctx* ctx, v1::PolicyChange* r) { return stub->RollbackPolicy(ctx, *req, r); },
        PolicyChangeBrief);
  }
  if (name == "policy diff") {
    auto req = DiffRequest(inv);
    if (!req.ok()) return UsageError(req.status());
    return CallAndPrint<v1::DiffPolicyVersionsResponse>(
        inv, conn, "DiffPolicyVersions",
        [&](Ctx* ctx, v1::DiffPolicyVersionsResponse* r) {
          return stub->DiffPolicyVersions(ctx, *req, r);
        },
        [](const v1::DiffPolicyVersionsResponse& r) { return DiffText(r.lines()); });
  }
  if (name == "policy approve" || name == "policy reject") {
    auto req = PolicyDecisionRequestFromArgs(inv);
    if (!req.ok()) return UsageError(req.status());
    const bool approve = name == "policy approve";
    return CallAndPrint<v1::PolicyChange>(
        inv, conn, approve ? "ApprovePolicyChange" : "RejectPolicyChange",
        [&](Ctx* ctx, v1::PolicyChange* r) {
          return approve ? stub->ApprovePolicyChange(ctx, *req, r)
                         : stub->RejectPolicyChange(ctx, *req, r);
        },
        PolicyChangeBrief);
  }
  // The rest name one change.
  auto req = PolicyChangeRequestFromArgs(inv);
  if (!req.ok()) return UsageError(req.status());
  if (name == "policy preview") {
    return CallAndPrint<v1::PolicyImpact>(
        inv, conn, "PreviewPolicyChange",
        [&](Ctx* ctx, v1::PolicyImpact* r) {
          grpc::Status s = stub->PreviewPolicyChange(ctx, *req, r);
          // The table says it at the top; JSON readers still get told.
          if (s.ok() && inv.Format() == "json" && r->current_version() != r->base_version()) {
            std::cerr << "vigilctl: warning: change " << r->change_id()
                      << " was proposed on version " << r->base_version()
                      << " but the current version is " << r->current_version()
                      << ": applying it will be refused\n";
          }
          return s;
        },
        PolicyImpactText);
  }
  if (name == "policy apply") {
    return CallAndPrint<v1::PolicyChange>(
        inv, conn, "ApplyPolicyChange",
        [&](Ctx* ctx, v1::PolicyChange* r) { return stub->ApplyPolicyChange(ctx, *req, r); },
        PolicyChangeBrief);
  }
  if (name == "policy change") {
    return CallAndPrint<v1::PolicyChange>(
        inv, conn, "GetPolicyChange",
        [&](Ctx* ctx, v1::PolicyChange* r) { return stub->GetPolicyChange(ctx, *req, r); },
        PolicyChangeDetail);
  }
  if (name == "policy review") {
    return CallAndPrint<v1::PolicyReview>(
        inv, conn, "ReviewPolicyChange",
        [&](Ctx* ctx, v1::PolicyReview* r) { return stub->ReviewPolicyChange(ctx, *req, r); },
        PolicyReviewText);
  }
  return UsageError(Status::InvalidArgument("'" + std::string(name) + "' is not runnable"));
}

int Exception(const Invocation& inv, const Connection& conn, int64_t now_ms) {
  const std::string_view name = inv.command->name;
  auto* stub = conn.stub.get();
  using Ctx = grpc::ClientContext;
  if (name == "exception request") {
    auto req = ExceptionRequestFromFlags(inv, now_ms);
    if (!req.ok()) return UsageError(req.status());
    return CallAndPrint<v1::PolicyException>(
        inv, conn, "RequestException",
        [&](Ctx* ctx, v1::PolicyException* r) { return stub->RequestException(ctx, *req, r); },
        [](const v1::PolicyException& e) {
          return ExceptionBrief(e) + "next: another person runs vigilctl exception approve " +
                 std::to_string(e.id()) + "\n";
        });
  }
  if (name == "exception list") {
    auto req = ListExceptionsRequestFromFlags(inv);
    if (!req.ok()) return UsageError(req.status());
    const std::string format = inv.Format();
    return CallAndPrint<v1::ListExceptionsResponse>(
        inv, conn, "ListExceptions",
        [&](Ctx* ctx, v1::ListExceptionsResponse* r) { return stub->ListExceptions(ctx, *req, r); },
        [&](const v1::ListExceptionsResponse& r) {
          if (r.next_after_id() != 0) {
            std::cerr << "more exceptions: repeat with --after-id " << r.next_after_id() << "\n";
          }
          Table t = ExceptionsTable(r.exceptions(), StyleOf(format));
          return format == "csv" ? FormatCsv(t) : FormatTable(t);
        });
  }
  auto req = ExceptionDecisionRequestFromArgs(inv);
  if (!req.ok()) return UsageError(req.status());
  const std::string rpc = name == "exception approve"  ? "ApproveException"
                          : name == "exception reject" ? "RejectException"
                                                       : "RevokeException";
  return CallAndPrint<v1::PolicyException>(
      inv, conn, rpc,
      [&](Ctx* ctx, v1::PolicyException* r) {
        if (name == "exception approve") return stub->ApproveException(ctx, *req, r);
        if (name == "exception reject") return stub->RejectException(ctx, *req, r);
        return stub->RevokeException(ctx, *req, r);
      },
      ExceptionBrief);
}

int Run(const Invocation& inv, const Connection& conn, int64_t now_ms) {
  const std::string_view name = inv.command->name;
  if (name == "devices") return Devices(inv, conn, now_ms);
  if (name == "device") return Device(inv, conn);
  if (name == "device approve" || name == "device revoke" || name == "device tag") {
    return DeviceAction(inv, conn);
  }
  if (name == "history") return History(inv, conn, now_ms);
  if (name == "alerts") return Alerts(inv, conn);
  if (name == "export") return Export(inv, conn, now_ms);
  if (name == "audit" || name == "audit verify") return Audit(inv, conn);
  if (name == "summary") return Summary(inv, conn);
  if (name == "stats") return Stats(inv, conn);
  if (name.rfind("policy ", 0) == 0) return Policy(inv, conn);
  if (name.rfind("exception ", 0) == 0) return Exception(inv, conn, now_ms);
  return UsageError(Status::InvalidArgument("'" + std::string(name) + "' is not runnable"));
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto inv = ParseCommandLine(args);
  if (!inv.ok()) return UsageError(inv.status());
  if (inv->help) {
    if (!inv->group.empty()) {
      std::cout << GroupUsage(inv->group);
    } else {
      std::cout << (inv->command && inv->command->name != "help" ? CommandUsage(*inv->command)
                                                                 : MainUsage());
    }
    return kExitOk;
  }
  auto conn = Connect(*inv);
  if (!conn.ok()) return UsageError(conn.status());
  SystemClock clock;
  int rc = Run(*inv, *conn, clock.NowMillis());
  std::cout.flush();
  if (!std::cout && rc == kExitOk) return Failed("standard output: write failed");
  return rc;
}

}  // namespace
}  // namespace vigil::ctl

int main(int argc, char** argv) { return vigil::ctl::Main(argc, argv); }

// vigilctl: the security team's command line for fleet status.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "common/files.h"
#include "common/flags.h"
#include "proto/audit_chain.h"
#include "proto/json.h"
#include "proto/signing.h"
#include "vigil/v1/fleet_service.grpc.pb.h"

namespace vigil::ctl {
namespace {

constexpr const char* kUsage = R"(usage: vigilctl [--server HOST:PORT] COMMAND [options]

Commands:
  devices [--status S] [--failing-check C] [--os OS]   list devices
  device ID [--history N]                              one device: checks, reasons, evidence,
                                                       the last N attestations (default 10)
  device approve ID                                    (admin) let a PENDING device report
  device revoke ID --reason TEXT                       (admin) reject the device's reports
  summary                                              device counts by status
  audit [--limit N]                                    (admin, approver) the audit log
  audit verify [--expect-head HEX]                     check the audit log's hash chain; with
                                                       --expect-head, also that a head you
                                                       recorded earlier is still in it
  stats                                                accepted/rejected counters by reason

Options:
  --server HOST:PORT   the vigil-server (default: $VIGIL_SERVER or 127.0.0.1:7400)
  --ca FILE            CA certificate to trust (default: $VIGIL_CA, else the system's roots);
                       `vigil-server init` writes it to DATA_DIR/tls/ca.crt
  --token-file FILE    file holding an access token (default: $VIGIL_TOKEN_FILE; or the token
                       itself in $VIGIL_TOKEN). Create one with `vigil-server token create`.
  --insecure           plaintext gRPC (only for a server started with --insecure on loopback)
  --format table|json  output format (default table); json is the protobuf JSON mapping
  --timeout SECONDS    per-call deadline (default 10)

Statuses: COMPLIANT NON_COMPLIANT UNKNOWN STALE TAMPERED EXCEPTED PENDING REVOKED
Exit codes: 0 success, 1 server unreachable or failed, 2 usage error, 3 device not found,
4 not authorized (missing, invalid, expired or revoked token, or a role that may not do this),
5 the audit log does not verify.
)";

int Usage(const std::string& msg) {
  std::cerr << "vigilctl: " << msg << "\n\n" << kUsage;
  return 2;
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "never";
  std::time_t secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "-" : out;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

int RpcFailed(const grpc::Status& s, const std::string& server) {
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    std::cerr << "vigilctl: " << s.error_message() << "\n";
    return 3;
  }
  if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    std::cerr << "vigilctl: " << server << ": " << s.error_message() << "\n";
    return 4;
  }
  std::cerr << "vigilctl: " << server << ": " << s.error_message() << " (gRPC code "
            << s.error_code() << ")\n";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::cerr << "is vigil-server running there? set --server or VIGIL_SERVER\n";
  }
  return 1;
}

int Main(int argc, char** argv) {
  FlagSpec spec{{"server", "format", "status", "failing-check", "os", "timeout", "history", "ca",
                 "token-file", "reason", "limit", "expect-head"},
                {"help", "insecure"}};
  auto flags = Flags::Parse(argc, argv, 1, spec);
  if (!flags.ok()) return Usage(flags.status().message());
  if (flags->Has("help") || flags->positional().empty()) {
    std::cout << kUsage;
    return flags->Has("help") ? 0 : 2;
  }
  const char* env_server = std::getenv("VIGIL_SERVER");
  std::string server = flags->GetOr("server", env_server ? env_server : "127.0.0.1:7400");
  std::string format = flags->GetOr("format", "table");
  if (format != "table" && format != "json") return Usage("--format must be table or json");
  auto timeout = flags->GetUint("timeout", 10);
  if (!timeout.ok()) return Usage(timeout.status().message());

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (flags->Has("insecure")) {
    // Plaintext would carry the token in the clear: only to this machine.
    std::string host = server.substr(0, server.rfind(':'));
    if (host != "localhost" && host.rfind("127.", 0) != 0 && host != "[::1]") {
      return Usage("--insecure is only for a server on this machine (127.0.0.1, localhost)");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions tls;
    const char* env_ca = std::getenv("VIGIL_CA");
    if (auto ca = flags->Get("ca") ? flags->Get("ca")
                                   : (env_ca ? std::optional<std::string>(env_ca) : std::nullopt)) {
      auto pem = ReadWholeFile(*ca, 1u << 20);
      if (!pem.ok()) return Usage("--ca: " + pem.status().message());
      tls.pem_root_certs = *pem;
    }
    creds = grpc::SslCredentials(tls);
  }
  std::string token;
  const char* env_token_file = std::getenv("VIGIL_TOKEN_FILE");
  if (auto file =
          flags->Get("token-file")
              ? flags->Get("token-file")
              : (env_token_file ? std::optional<std::string>(env_token_file) : std::nullopt)) {
    auto t = ReadSecretFile(*file);
    if (!t.ok()) return Usage("token file: " + t.status().message());
    token = *t;
  } else if (const char* env_token = std::getenv("VIGIL_TOKEN")) {
    token = env_token;
  }
  auto channel = grpc::CreateChannel(server, creds);
  auto stub = v1::FleetService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(*timeout));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  const auto& pos = flags->positional();
  const std::string& cmd = pos[0];

  if (cmd == "devices") {
    if (pos.size() != 1) return Usage("devices takes no arguments");
    v1::ListDevicesRequest req;
    if (auto s = flags->Get("status")) {
      v1::DeviceStatus st;
      if (!v1::DeviceStatus_Parse(*s, &st) || st == v1::DEVICE_STATUS_UNSPECIFIED) {
        return Usage("--status: unknown status '" + *s + "'");
      }
      req.set_status(st);
    }
    req.set_failing_check(flags->GetOr("failing-check", ""));
    req.set_os(flags->GetOr("os", ""));
    v1::ListDevicesResponse resp;
    grpc::Status s = stub->ListDevices(&ctx, req, &resp);
    if (!s.ok()) return RpcFailed(s, server);
    if (format == "json") {
      std::cout << ToJson(resp) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"DEVICE", "HOSTNAME", "STATUS", "FAILING", "LAST SEEN", "OS"}};
    for (const auto& d : resp.devices()) {
      rows.push_back({d.device_id(), d.hostname(), v1::DeviceStatus_Name(d.status()),
                      Join(d.failing_checks()), Time(d.last_seen()), d.os_name()});
    }
    PrintTable(rows);
    return 0;
  }
  if (cmd == "device" && pos.size() >= 2 && (pos[1] == "approve" || pos[1] == "revoke")) {
    if (pos.size() != 3) return Usage("device " + pos[1] + " needs exactly one device id");
    v1::DeviceActionRequest req;
    req.set_device_id(pos[2]);
    req.set_reason(flags->GetOr("reason", ""));
    if (pos[1] == "revoke" && req.reason().empty()) {
      return Usage("device revoke needs --reason TEXT (it is recorded in the audit log)");
    }
    v1::DeviceActionResponse resp;
    grpc::Status s = pos[1] == "approve" ? stub->ApproveDevice(&ctx, req, &resp)
                                         : stub->RevokeDevice(&ctx, req, &resp);
    if (!s.ok()) return RpcFailed(s, server);
    if (format == "json") {
      std::cout << ToJson(resp) << "\n";
    } else {
      std::cout << resp.device().device_id() << " " << v1::DeviceStatus_Name(resp.device().status())
                << "\n";
    }
    return 0;
  }
  if (cmd == "audit") {
    bool verify = pos.size() == 2 && pos[1] == "verify";
    if (pos.size() > 2 || (pos.size() == 2 && !verify)) return Usage("audit [verify]");
    auto limit = flags->GetUint("limit", verify ? UINT32_MAX : 100);
    if (!limit.ok()) return Usage(limit.status().message());
    // Page through the whole log: verification needs every entry from the first.
    std::vector<v1::AuditEntry> entries;
    uint64_t after = 0;
    for (;;) {
      grpc::ClientContext page_ctx;
      page_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(*timeout));
      if (!token.empty()) page_ctx.AddMetadata("authorization", "Bearer " + token);
      v1::ListAuditRequest req;
      req.set_after_id(after);
      req.set_limit(10000);
      v1::ListAuditResponse resp;
      grpc::Status s = stub->ListAudit(&page_ctx, req, &resp);
      if (!s.ok()) return RpcFailed(s, server);
      for (auto& e : *resp.mutable_entries()) entries.push_back(std::move(e));
      if (resp.entries_size() < 10000) break;
      after = entries.back().id();
    }
    if (verify) {
      auto check = audit::VerifyChain(entries, std::string(audit::kHashSize, '\0'));
      if (!check.ok()) {
        std::cerr << "vigilctl: the audit log does NOT verify: " << check.status().message()
                  << "\n";
        return 5;
      }
      if (auto expect = flags->Get("expect-head")) {
        bool seen = false;
        for (const auto& e : entries) seen = seen || signing::Hex(e.hash()) == *expect;
        if (!seen) {
          std::cerr << "vigilctl: the audit log does NOT contain the recorded head " << *expect
                    << " (entries were removed or the log was rewritten)\n";
          return 5;
        }
      }
      std::cout << "audit log verified: " << check->checked << " entries, head "
                << signing::Hex(check->head) << "\n";
      return 0;
    }
    size_t first = entries.size() > *limit ? entries.size() - *limit : 0;
    if (format == "json") {
      v1::ListAuditResponse out;
      for (size_t i = first; i < entries.size(); ++i) *out.add_entries() = entries[i];
      std::cout << ToJson(out) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"ID", "TIME", "ACTOR", "ACTION", "TARGET", "OK", "DETAIL"}};
    for (size_t i = first; i < entries.size(); ++i) {
      const auto& e = entries[i];
      google::protobuf::Timestamp t;
      t.set_seconds(e.at_ms() / 1000);
      rows.push_back({std::to_string(e.id()), Time(t), e.actor(), e.action(), e.target(),
                      e.success() ? "yes" : "NO", e.detail()});
    }
    PrintTable(rows);
    return 0;
  }
  if (cmd == "stats") {
    v1::ServerStatsResponse resp;
    grpc::Status s = stub->ServerStats(&ctx, v1::ServerStatsRequest(), &resp);
    if (!s.ok()) return RpcFailed(s, server);
    if (format == "json") {
      std::cout << ToJson(resp) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"COUNTER", "VALUE"}};
    for (const auto& c : resp.counters()) rows.push_back({c.name(), std::to_string(c.value())});
    PrintTable(rows);
    return 0;
  }
  if (cmd == "device") {
    if (pos.size() != 2) return Usage("device needs exactly one device id");
    v1::GetDeviceRequest req;
    req.set_device_id(pos[1]);
    auto hist = flags->GetUint("history", 10);
    if (!hist.ok()) return Usage(hist.status().message());
    req.set_history_limit(static_cast<uint32_t>(*hist));
    v1::GetDeviceResponse resp;
    grpc::Status s = stub->GetDevice(&ctx, req, &resp);
    if (!s.ok()) return RpcFailed(s, server);
    if (format == "json") {
      std::cout << ToJson(resp) << "\n";
      return 0;
    }
    const auto& d = resp.device();
    std::cout << "device    " << d.device_id() << "\nhostname  " << d.hostname() << "\nstatus    "
              << v1::DeviceStatus_Name(d.status()) << " (" << d.status_reason() << ")\n"
              << "os        " << resp.platform().os_name() << " (kernel "
              << resp.platform().kernel() << ")\nlast seen " << Time(d.last_seen()) << " (sequence "
              << d.last_sequence() << ")\npolicy    " << resp.policy_version() << "\n\nCHECKS\n";
    for (const auto& c : resp.checks()) {
      std::cout << "  " << std::left << std::setw(16) << c.check() << std::setw(15)
                << v1::CheckStatus_Name(c.status()) << c.reason() << "\n";
      std::cout << "      evidence: " << ToJson(c.evidence(), false) << "\n";
    }
    if (resp.history_size() > 0) {
      std::cout << "\nHISTORY (newest first)\n";
      std::vector<std::vector<std::string>> rows = {
          {"  SEQ", "ISSUED", "RECEIVED", "STATUS", "FAILING"}};
      for (const auto& h : resp.history()) {
        rows.push_back({"  " + std::to_string(h.sequence()), Time(h.issued_at()),
                        Time(h.received_at()), v1::DeviceStatus_Name(h.status()),
                        Join(h.failing_checks())});
      }
      PrintTable(rows);
    }
    if (resp.events_size() > 0) {
      std::cout << "\nEVENTS (newest first)\n";
      for (const auto& e : resp.events()) {
        std::cout << "  " << Time(e.at()) << "  " << e.kind() << "  " << e.detail() << "\n";
      }
    }
    return 0;
  }
  if (cmd == "summary") {
    v1::SummaryResponse resp;
    grpc::Status s = stub->Summary(&ctx, v1::SummaryRequest(), &resp);
    if (!s.ok()) return RpcFailed(s, server);
    if (format == "json") {
      std::cout << ToJson(resp) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"STATUS", "DEVICES"}};
    for (const auto& c : resp.by_status()) {
      rows.push_back({v1::DeviceStatus_Name(c.status()), std::to_string(c.count())});
    }
    rows.push_back({"TOTAL", std::to_string(resp.total())});
    PrintTable(rows);
    std::cout << "policy " << resp.policy_version() << "\n";
    return 0;
  }
  return Usage("unknown command '" + cmd + "'");
}

}  // namespace
}  // namespace vigil::ctl

int main(int argc, char** argv) { return vigil::ctl::Main(argc, argv); }

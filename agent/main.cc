// vigil-agent: the composition root. Commands: collect, enroll, once, run.
#include <google/protobuf/text_format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "agent/agent.h"
#include "agent/daemon.h"
#include "collectors/policy.h"
#include "collectors/system_view.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/flags.h"
#include "proto/json.h"

namespace vigil::agent {
namespace {

constexpr const char* kUsage = R"(usage: vigil-agent COMMAND [options]

Commands:
  collect [--root DIR] [--policy FILE] [--format json|text]
        Print one attestation's content (evidence and advisory verdicts). No key, no server.
  enroll --bundle FILE --state-dir DIR
  enroll --server HOST:PORT --enroll-secret-file FILE [--ca FILE] --state-dir DIR
        Create the device key (0600) if missing and register it with the server. The bundle
        (from `vigil-server init`) carries the server address, its CA and the enroll secret.
        The server returns a client certificate for mutual TLS (kept in the state directory).
  rotate-key [--config FILE] [options]
        Replace the device key; the old and the new key both sign the change, and the server
        issues a certificate for the new key. once/run also do this by themselves when the
        client certificate has less than 30 days left.
  once [--config FILE] [options]
        Collect, sign, queue, send everything queued, exit.
  status --state-dir DIR [--format text|json]   (or --config FILE)
        Enrollment, server, last collection and report, the last error, outbox depth and
        drops, the daemon's next run. Reads the state directory only; no network.
  run --config FILE [options]
        Daemon: collect every interval (+ jitter); SIGTERM stops, SIGHUP re-reads the config.

Options for once/run (each overrides the config file's field of the same name):
  --server HOST:PORT  --state-dir DIR  --root DIR  --policy FILE  --interval SECONDS
  --jitter SECONDS  --rpc-timeout SECONDS  --max-batch N  --enroll-secret-file FILE
  --bundle FILE  --ca FILE  --insecure (plaintext, for a loopback server started --insecure)
The server defaults to the bundle's, else the one recorded at enrollment. TLS trusts --ca,
else the CA saved from the bundle, else the system's roots. Secrets are never logged.

Exit codes: 0 success; 1 runtime failure (e.g. server unreachable: attestations stay queued);
2 bad flags, configuration or policy.
)";

int Usage(const std::string& msg) {
  std::cerr << "vigil-agent: " << msg << "\n\n" << kUsage;
  return 2;
}

int Fail(int code, const std::string& msg) {
  std::cerr << "vigil-agent: " << msg << "\n";
  return code;
}

const FlagSpec kSpec{{"root", "policy", "format", "server", "enroll-secret-file", "state-dir",
                      "config", "interval", "jitter", "rpc-timeout", "max-batch", "bundle", "ca"},
                     {"help", "insecure"}};

// The config file (if any) overlaid with flags, defaults filled, ranges checked.
Result<v1::AgentConfig> BuildConfig(const Flags& flags) {
  v1::AgentConfig c;
  if (auto path = flags.Get("config")) {
    auto text = ReadWholeFile(*path, 1u << 20);
    if (!text.ok()) return text.status();
    if (Status s = ParseJsonStrict(*text, &c, *path); !s.ok()) return s;
  }
  if (auto v = flags.Get("server")) c.set_server(*v);
  if (auto v = flags.Get("state-dir")) c.set_state_dir(*v);
  if (auto v = flags.Get("root")) c.set_root(*v);
  if (auto v = flags.Get("policy")) c.set_policy_file(*v);
  if (auto v = flags.Get("enroll-secret-file")) c.set_enroll_secret_file(*v);
  if (auto v = flags.Get("bundle")) c.set_bundle_file(*v);
  if (auto v = flags.Get("ca")) c.set_ca_file(*v);
  if (flags.Has("insecure")) c.set_insecure(true);
  struct {
    const char* flag;
    void (v1::AgentConfig::*set)(uint32_t);
  } numbers[] = {{"interval", &v1::AgentConfig::set_interval_seconds},
                 {"jitter", &v1::AgentConfig::set_jitter_seconds},
                 {"rpc-timeout", &v1::AgentConfig::set_rpc_timeout_seconds},
                 {"max-batch", &v1::AgentConfig::set_max_batch}};
  for (const auto& n : numbers) {
    if (!flags.Has(n.flag)) continue;
    auto v = flags.GetUint(n.flag, 0);
    if (!v.ok()) return v.status();
    if (*v > UINT32_MAX) return Status::InvalidArgument(std::string("--") + n.flag + ": too large");
    (c.*n.set)(static_cast<uint32_t>(*v));
  }
  if (Status s = NormalizeConfig(&c); !s.ok()) return s;
  if (c.state_dir().empty()) return Status::InvalidArgument("stateDir: required (--state-dir DIR)");
  // The server enrolled with comes first: the bundle is only needed until enrollment, and
  // installers delete it then (it holds the enroll secret).
  if (c.server().empty()) {
    auto recorded = StateDir(c.state_dir()).EnrolledServer();
    if (recorded.ok()) c.set_server(*recorded);
  }
  if (c.server().empty() && !c.bundle_file().empty()) {
    auto bundle = LoadBundle(c.bundle_file());
    if (!bundle.ok()) return bundle.status();
    c.set_server(bundle->server());
  }
  if (c.server().empty()) return Status::InvalidArgument("server: required (--server HOST:PORT)");
  if (!c.policy_file().empty()) {
    auto p = collectors::LoadPolicyFile(c.policy_file());
    if (!p.ok()) return p.status();
  }
  return c;
}

void PrintText(const v1::Attestation& att) {
  const auto& p = att.platform();
  std::cout << "host     " << p.hostname() << "\nos       " << p.os_name() << " (kernel "
            << (p.kernel().empty() ? "unknown" : p.kernel()) << ", " << p.arch() << ")\npolicy   "
            << att.policy_version() << "\n\n";
  for (const auto& c : att.checks()) {
    std::cout << c.check() << ": " << v1::CheckStatus_Name(c.status()) << "\n  " << c.reason()
              << "\n";
    std::string evidence;
    google::protobuf::TextFormat::Printer printer;
    printer.SetInitialIndentLevel(2);
    printer.PrintToString(c.evidence(), &evidence);
    std::cout << "  evidence:\n" << evidence << "\n";
  }
}

int Collect(const Flags& flags) {
  std::string format = flags.GetOr("format", "json");
  if (format != "json" && format != "text") return Usage("--format must be json or text");
  v1::Policy policy = collectors::DefaultPolicy();
  if (auto path = flags.Get("policy")) {
    auto p = collectors::LoadPolicyFile(*path);
    if (!p.ok()) return Fail(2, "policy: " + p.status().message());
    policy = std::move(p).value();
  }
  auto view = collectors::NewRootedSystemView(flags.GetOr("root", "/"));
  SystemClock clock;
  v1::Attestation att = BuildAttestation(*view, policy, clock);
  if (format == "json") {
    std::cout << ToJson(att) << "\n";
  } else {
    PrintText(att);
  }
  return 0;
}

int Enroll(const Flags& flags) {
  if (!flags.Has("state-dir")) return Usage("enroll needs --state-dir");
  if (!flags.Has("bundle") && !(flags.Has("server") && flags.Has("enroll-secret-file"))) {
    return Usage("enroll needs --bundle FILE, or --server and --enroll-secret-file");
  }
  auto config = BuildConfig(flags);
  if (!config.ok()) return Fail(2, config.status().message());
  auto view = collectors::NewRootedSystemView(config->root());
  SystemClock clock;
  Agent agent(*config, *view, clock);
  if (Status s = agent.EnrollFromConfig(); !s.ok()) {
    bool usage = s.code() == Status::Code::kPermissionDenied ||
                 s.code() == Status::Code::kUnauthenticated ||
                 s.code() == Status::Code::kInvalidArgument || s.code() == Status::Code::kNotFound;
    return Fail(usage ? 2 : 1, "enroll: " + s.message());
  }
  std::cout << *agent.state().DeviceId() << "\n";
  return 0;
}

// Agent and transport for once/rotate-key; finishes an interrupted key rotation and enrolls
// first when the configuration can.
struct Session {
  std::unique_ptr<collectors::SystemView> view;
  SystemClock clock;
  std::unique_ptr<Agent> agent;
  std::unique_ptr<Transport> transport;
};

Result<std::unique_ptr<Session>> OpenSession(const v1::AgentConfig& config) {
  auto session = std::make_unique<Session>();
  session->view = collectors::NewRootedSystemView(config.root());
  session->agent = std::make_unique<Agent>(config, *session->view, session->clock);
  Agent& agent = *session->agent;
  if (!agent.state().DeviceId().ok() &&
      (!config.bundle_file().empty() || !config.enroll_secret_file().empty())) {
    if (Status s = agent.EnrollFromConfig(); !s.ok()) return s.Prefixed("enroll: ");
  }
  auto options = TransportOptionsFor(config);
  if (!options.ok()) return options.status();
  session->transport = NewGrpcTransport(*options);
  if (agent.RotationPending() || agent.CertificateNeedsRenewal()) {
    if (!agent.RotationPending()) spdlog::info("client certificate expires soon: rotating the key");
    if (Status s = agent.RotateKey(*session->transport); !s.ok()) {
      // A rotation still pending must finish before anything is signed; a refused renewal
      // leaves the current key and certificate in use.
      if (agent.RotationPending()) return s.Prefixed("finishing the key rotation: ");
      spdlog::error("key rotation: {}", s.message());
    }
    options = TransportOptionsFor(config);  // the new key's client certificate
    if (!options.ok()) return options.status();
    session->transport = NewGrpcTransport(*options);
  }
  return session;
}

int Once(const Flags& flags) {
  auto config = BuildConfig(flags);
  if (!config.ok()) return Fail(2, config.status().message());
  auto session = OpenSession(*config);
  if (!session.ok()) return Fail(1, session.status().message());
  Agent& agent = *(*session)->agent;
  auto seq = agent.CollectAndQueue();
  if (!seq.ok()) {
    return Fail(seq.status().code() == Status::Code::kNotFound ? 2 : 1, seq.status().message());
  }
  auto flushed = agent.Flush(*(*session)->transport);
  if (!flushed.ok()) {
    return Fail(1, "attestation " + std::to_string(*seq) +
                       " is queued; sending failed: " + flushed.status().message());
  }
  spdlog::info("attestation {} queued; {} acknowledged, {} rejected", *seq, flushed->acknowledged,
               flushed->rejected);
  return flushed->rejected > 0 ? 1 : 0;
}

std::string TimeOrNever(int64_t ms) { return ms <= 0 ? "never" : UtcTime(ms); }

int ShowStatus(const Flags& flags) {
  // A device not enrolled yet has no server to name: the state directory alone is enough.
  auto built = BuildConfig(flags);
  v1::AgentConfig c;
  if (built.ok()) {
    c = *built;
  } else if (auto dir = flags.Get("state-dir")) {
    c.set_state_dir(*dir);
  } else {
    return Fail(2, built.status().message());
  }
  const v1::AgentConfig* config = &c;
  StateDir state(config->state_dir());
  auto device = state.DeviceId();
  auto server = state.EnrolledServer();
  auto run = state.LoadRunStatus();
  if (!run.ok()) return Fail(1, run.status().message());
  Outbox outbox(state.OutboxDir());
  auto pending = outbox.Pending();
  auto dropped = outbox.Dropped();
  v1::AgentStatusReport report;
  report.set_enrolled(device.ok());
  if (device.ok()) report.set_device_id(*device);
  report.set_server(!config->server().empty() ? config->server() : server.ok() ? *server : "");
  *report.mutable_run() = *run;
  report.set_outbox_depth(pending.ok() ? pending->size() : 0);
  report.set_outbox_dropped(dropped.ok() ? *dropped : 0);
  if (flags.GetOr("format", "text") == "json") {
    std::cout << ToJson(report) << "\n";
  } else {
    std::cout << "enrolled        " << (device.ok() ? "yes, as " + *device : "no") << "\n"
              << "server          " << (report.server().empty() ? "-" : report.server()) << "\n"
              << "last collection " << TimeOrNever(run->last_collection_ms()) << "\n"
              << "last complete   " << TimeOrNever(run->last_complete_collection_ms())
              << " (every check collected)\n"
              << "last report     " << TimeOrNever(run->last_report_ms()) << "\n"
              << "report failures " << run->report_failures() << " in a row\n"
              << "last error      " << (run->last_error().empty() ? "-" : run->last_error()) << "\n"
              << "outbox          " << report.outbox_depth() << " queued, "
              << report.outbox_dropped() << " dropped while the server was unreachable\n"
              << "next run        "
              << (run->next_run_ms() ? TimeOrNever(run->next_run_ms()) : "- (no daemon seen)")
              << "\n";
  }
  return device.ok() ? 0 : 1;
}

int RotateKey(const Flags& flags) {
  auto config = BuildConfig(flags);
  if (!config.ok()) return Fail(2, config.status().message());
  auto session = OpenSession(*config);
  if (!session.ok()) return Fail(1, session.status().message());
  Agent& agent = *(*session)->agent;
  auto flushed = agent.Flush(*(*session)->transport);
  if (!flushed.ok()) return Fail(1, "sending queued attestations: " + flushed.status().message());
  if (Status s = agent.RotateKey(*(*session)->transport); !s.ok()) {
    return Fail(1, "rotate-key: " + s.message());
  }
  std::cout << "device key rotated\n";
  return 0;
}

int Main(int argc, char** argv) {
  // Logs go to stderr so `collect` output stays machine-readable.
  spdlog::set_default_logger(spdlog::stderr_color_mt("vigil-agent"));
  if (argc < 2) return Usage("missing command");
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "help" || cmd == "-h") {
    std::cout << kUsage;
    return 0;
  }
  auto flags = Flags::Parse(argc, argv, 2, kSpec);
  if (!flags.ok()) return Usage(flags.status().message());
  if (flags->Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (!flags->positional().empty())
    return Usage("unexpected argument '" + flags->positional()[0] + "'");
  if (cmd == "collect") return Collect(*flags);
  if (cmd == "enroll") return Enroll(*flags);
  if (cmd == "once") return Once(*flags);
  if (cmd == "rotate-key") return RotateKey(*flags);
  if (cmd == "status") {
    if (!flags->Has("state-dir") && !flags->Has("config")) {
      return Usage("status needs --state-dir DIR or --config FILE");
    }
    return ShowStatus(*flags);
  }
  if (cmd == "run") {
    if (!flags->Has("config") && !flags->Has("server")) return Usage("run needs --config FILE");
    Flags f = *flags;
    return RunDaemon([f] { return BuildConfig(f); });
  }
  return Usage("unknown command '" + cmd + "'");
}

}  // namespace
}  // namespace vigil::agent

int main(int argc, char** argv) { return vigil::agent::Main(argc, argv); }

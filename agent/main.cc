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
  enroll --server HOST:PORT --enroll-secret-file FILE --state-dir DIR
        Create the device key (0600) if missing and register it with the server.
  once [--config FILE] [options]
        Collect, sign, queue, send everything queued, exit.
  run --config FILE [options]
        Daemon: collect every interval (+ jitter); SIGTERM stops, SIGHUP re-reads the config.

Options for once/run (each overrides the config file's field of the same name):
  --server HOST:PORT  --state-dir DIR  --root DIR  --policy FILE  --interval SECONDS
  --jitter SECONDS  --rpc-timeout SECONDS  --max-batch N  --enroll-secret-file FILE

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
                      "config", "interval", "jitter", "rpc-timeout", "max-batch"},
                     {"help"}};

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
  if (c.server().empty()) return Status::InvalidArgument("server: required (--server HOST:PORT)");
  if (c.state_dir().empty()) return Status::InvalidArgument("stateDir: required (--state-dir DIR)");
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
  for (const char* f : {"server", "enroll-secret-file", "state-dir"}) {
    if (!flags.Has(f)) return Usage(std::string("enroll needs --") + f);
  }
  auto secret = ReadSecretFile(*flags.Get("enroll-secret-file"));
  if (!secret.ok()) return Fail(2, "enroll secret: " + secret.status().message());
  v1::AgentConfig c;
  c.set_server(*flags.Get("server"));
  c.set_state_dir(*flags.Get("state-dir"));
  c.set_root(flags.GetOr("root", "/"));
  if (Status s = NormalizeConfig(&c); !s.ok()) return Fail(2, s.message());
  auto view = collectors::NewRootedSystemView(c.root());
  SystemClock clock;
  Agent agent(c, *view, clock);
  auto transport = NewGrpcTransport(c.server(), std::chrono::seconds(c.rpc_timeout_seconds()));
  if (Status s = agent.Enroll(*transport, *secret); !s.ok()) {
    return Fail(s.code() == Status::Code::kPermissionDenied ? 2 : 1, "enroll: " + s.message());
  }
  std::cout << *agent.state().DeviceId() << "\n";
  return 0;
}

int Once(const Flags& flags) {
  auto config = BuildConfig(flags);
  if (!config.ok()) return Fail(2, config.status().message());
  auto view = collectors::NewRootedSystemView(config->root());
  SystemClock clock;
  Agent agent(*config, *view, clock);
  auto transport =
      NewGrpcTransport(config->server(), std::chrono::seconds(config->rpc_timeout_seconds()));
  if (!agent.state().DeviceId().ok() && !config->enroll_secret_file().empty()) {
    auto secret = ReadSecretFile(config->enroll_secret_file());
    if (!secret.ok()) return Fail(2, "enroll secret: " + secret.status().message());
    if (Status s = agent.Enroll(*transport, *secret); !s.ok()) {
      return Fail(1, "enroll: " + s.message());
    }
  }
  auto seq = agent.CollectAndQueue();
  if (!seq.ok()) {
    return Fail(seq.status().code() == Status::Code::kNotFound ? 2 : 1, seq.status().message());
  }
  auto flushed = agent.Flush(*transport);
  if (!flushed.ok()) {
    return Fail(1, "attestation " + std::to_string(*seq) +
                       " is queued; sending failed: " + flushed.status().message());
  }
  spdlog::info("attestation {} queued; {} acknowledged, {} rejected", *seq, flushed->acknowledged,
               flushed->rejected);
  return flushed->rejected > 0 ? 1 : 0;
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

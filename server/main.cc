// vigil-server: the composition root. `serve` (the default) parses flags, opens the store,
// loads the policy and the TLS material, and serves AgentService and FleetService until
// SIGTERM/SIGINT. `init`, `token` and `secret` manage the data directory offline (they work
// while a server runs on it: SQLite serializes the writes).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "collectors/policy.h"
#include "collectors/policy_set.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/flags.h"
#include "proto/json.h"
#include "server/aggregator.h"
#include "server/alerts.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/http_api.h"
#include "server/jobs.h"
#include "server/limits.h"
#include "server/postgres_store.h"
#include "server/services.h"
#include "server/sqlite_store.h"
#include "server/tls.h"
#include "vigil/v1/config.pb.h"

namespace vigil::server {
namespace {

constexpr const char* kUsage =
    R"(usage: vigil-server [serve] --data-dir DIR [options]
       vigil-server init --data-dir DIR --server-address HOST:PORT [--san NAMES] [--bundle FILE]
                         [--secret-expires DURATION]
       vigil-server cert renew --data-dir DIR --san NAMES
       vigil-server token create --data-dir DIR --role viewer|admin|approver --name NAME
                                 [--expires DURATION]
       vigil-server token list|revoke --data-dir DIR [ID|NAME]
       vigil-server secret create --data-dir DIR --name NAME [--expires DURATION]
                                  [--bundle FILE --server-address HOST:PORT]
       vigil-server secret list|revoke --data-dir DIR [ID|NAME]

serve: AgentService (enrollment, reports, key rotation) and FleetService (vigilctl) over gRPC
with TLS 1.3, using the CA and certificate that `init` put in DIR/tls.
  --listen HOST:PORT          address to listen on (default 127.0.0.1:7400; port 0 = any free port)
  --policy FILE               policy JSON (default: the built-in example policy)
  --ready-file FILE           write the bound HOST:PORT here once serving (for scripts and tests)
  --http-listen HOST:PORT     also serve the HTTPS API, /metrics and the dashboard on this address
                              (TLS 1.3 with the same certificate and tokens; off by default; port
                              0 = any free port; docs/api.md)
  --http-ready-file FILE      write the HTTPS port's bound HOST:PORT here once serving
  --require-client-cert       agents must report over mutual TLS with the certificate issued at
                              enrollment (enrollment itself and vigilctl need no certificate)
  --approve-devices           new devices stay PENDING until `vigilctl device approve ID`
  --live-window SECONDS       how far an attestation's issue time may be from the server clock
                              to count as live (default 600); older ones are kept as history
  --report-rate N             attestations per minute per device (default 60, burst 2N; 0 = off)
  --max-batch N               attestations per report (default 100)
  --max-inflight N            attestations being verified or committed at once, server-wide
                              (default 2000; 0 = no limit); beyond it reports are answered
                              "busy" (code 8) at once and agents retry later
  --retention-days N          keep attestation history for N days (default 365; 0 = forever);
                              each device's latest attestation and the audit log are always kept
  --store URL                 postgresql://USER@HOST:PORT/DB to share one database between several
                              replicas (default: SQLite in DATA_DIR/vigil.db). init, token and
                              secret take the same flag. TLS material stays in DATA_DIR.
  --config FILE               server configuration (JSON): alert sinks (webhook, Slack, syslog)
                              and their settings; see docs/alerts.md
  --insecure                  plaintext gRPC; refused unless --listen is a loopback address

init: creates DIR (0700), its database, a private CA, a server certificate for --san (default:
the host of --server-address, plus localhost and 127.0.0.1), a first enroll secret, and the
enrollment bundle (default DIR/enroll-bundle.json, mode 0600) that agent installers consume.

cert renew: a new server certificate and key from the same CA (expiry, new names); agents keep
trusting it. Restart the server to use it.

token/secret: tokens authenticate vigilctl (roles: viewer reads; admin also approves and revokes
devices and reads the audit log; approver reads and reads the audit log); enroll secrets let
agents register. Both are printed once and stored only hashed. DURATION: 90d, 12h, 30m, never.

Exit codes: 0 success, 1 runtime failure, 2 bad flags or configuration.
)";

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in6_addr a6{};
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

int Fail(int code, const std::string& msg) {
  std::cerr << "vigil-server: " << msg << "\n";
  return code;
}

std::string LocalActor() { return "cli:uid " + std::to_string(::getuid()); }

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string Time(int64_t ms) { return ms == 0 ? "never" : UtcTime(ms); }

Result<std::unique_ptr<Store>> OpenDataDir(const std::string& data_dir,
                                           const std::string& store_url) {
  if (Status s = MakeDirs(data_dir, 0700); !s.ok()) return s;
  struct stat st {};
  if (::stat(data_dir.c_str(), &st) != 0) return Status::FromErrno(errno, data_dir);
  if ((st.st_mode & 077) != 0) {
    // It holds the CA key and, with SQLite, every device's evidence.
    return Status::PermissionDenied(data_dir + " is accessible to group or others; chmod 700 " +
                                    data_dir);
  }
  if (store_url.rfind("postgres://", 0) == 0 || store_url.rfind("postgresql://", 0) == 0) {
    return OpenPostgresStore(store_url);
  }
  if (!store_url.empty() && store_url != "sqlite") {
    return Status::InvalidArgument("--store: expected postgresql://... or sqlite, got '" +
                                   store_url.substr(0, store_url.find('@')) + "'");
  }
  return OpenSqliteStore(data_dir + "/vigil.db");
}

Status WriteBundle(const std::string& path, const std::string& server, const std::string& ca_pem,
                   const std::string& secret) {
  v1::EnrollBundle bundle;
  bundle.set_server(server);
  bundle.set_ca_certificate(ca_pem);
  bundle.set_enroll_secret(secret);
  return WriteFileAtomic(path, ToJson(bundle) + "\n", 0600);
}

Result<int64_t> Expiry(const Flags& flags) {
  if (auto e = flags.Get("expires")) return ParseDuration(*e);
  if (auto e = flags.Get("secret-expires")) return ParseDuration(*e);
  return int64_t{0};
}

int Init(const Flags& flags) {
  auto data_dir = flags.Get("data-dir");
  auto address = flags.Get("server-address");
  if (!data_dir || !address)
    return Fail(2, "init needs --data-dir and --server-address\n" + std::string(kUsage));
  size_t colon = address->rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Fail(2, "--server-address: expected HOST:PORT, got '" + *address + "'");
  }
  std::vector<std::string> sans;
  if (auto s = flags.Get("san")) {
    sans = SplitComma(*s);
  } else {
    sans = {address->substr(0, colon), "localhost", "127.0.0.1"};
  }
  auto ttl = Expiry(flags);
  if (!ttl.ok()) return Fail(2, ttl.status().message());
  auto store = OpenDataDir(*data_dir, flags.GetOr("store", ""));
  if (!store.ok()) return Fail(1, store.status().message());
  SystemClock clock;
  auto tls = CreateTlsMaterial(*data_dir, sans, clock.NowMillis() / 1000);
  if (!tls.ok())
    return Fail(tls.status().code() == Status::Code::kAlreadyExists ? 2 : 1,
                tls.status().message());
  Credentials credentials(**store, clock);
  auto secret = credentials.Create(CredentialKind::kEnrollSecret, "initial", 0, *ttl, LocalActor());
  if (!secret.ok()) return Fail(1, secret.status().message());
  std::string bundle = flags.GetOr("bundle", *data_dir + "/enroll-bundle.json");
  if (Status s = WriteBundle(bundle, *address, tls->ca.cert_pem, *secret); !s.ok()) {
    return Fail(1, s.message());
  }
  std::cout << "CA and server certificate in " << TlsDir(*data_dir) << " (SANs:";
  for (const auto& s : sans) std::cout << " " << s;
  std::cout << ")\nenrollment bundle (holds the enroll secret, keep it private): " << bundle
            << "\nnext: vigil-server token create --data-dir " << *data_dir
            << " --role admin --name YOUR-NAME\n";
  return 0;
}

int ManageCredentials(CredentialKind kind, const Flags& flags) {
  const auto& pos = flags.positional();
  std::string what = kind == CredentialKind::kToken ? "token" : "secret";
  if (pos.size() < 2) return Fail(2, what + ": expected create, list or revoke\n" + kUsage);
  auto data_dir = flags.Get("data-dir");
  if (!data_dir) return Fail(2, what + ": --data-dir is required");
  auto store = OpenDataDir(*data_dir, flags.GetOr("store", ""));
  if (!store.ok()) return Fail(1, store.status().message());
  SystemClock clock;
  Credentials credentials(**store, clock);
  const std::string& verb = pos[1];
  if (verb == "create") {
    auto name = flags.Get("name");
    if (!name) return Fail(2, what + " create: --name is required");
    if (flags.Has("bundle") && !flags.Has("server-address")) {
      return Fail(2, "secret create --bundle needs --server-address");
    }
    int role = 0;
    if (kind == CredentialKind::kToken) {
      auto r = ParseRole(flags.GetOr("role", ""));
      if (!r.ok()) return Fail(2, "--" + r.status().message());
      role = static_cast<int>(*r);
    }
    auto ttl = Expiry(flags);
    if (!ttl.ok()) return Fail(2, ttl.status().message());
    auto created = credentials.Create(kind, *name, role, *ttl, LocalActor());
    if (!created.ok()) {
      return Fail(created.status().code() == Status::Code::kInvalidArgument ||
                          created.status().code() == Status::Code::kAlreadyExists
                      ? 2
                      : 1,
                  created.status().message());
    }
    if (auto bundle = flags.Get("bundle"); bundle && kind == CredentialKind::kEnrollSecret) {
      auto address = flags.Get("server-address");
      if (!address) return Fail(2, "secret create --bundle needs --server-address");
      auto ca = ReadWholeFile(TlsDir(*data_dir) + "/ca.crt", 1u << 20);
      if (!ca.ok()) return Fail(1, ca.status().message());
      if (Status s = WriteBundle(*bundle, *address, *ca, *created); !s.ok()) {
        return Fail(1, s.message());
      }
      std::cout << "enrollment bundle written to " << *bundle << "\n";
      return 0;
    }
    std::cout << *created << "\n";
    std::cerr << "this " << what << " is shown once; only its hash is stored\n";
    return 0;
  }
  if (verb == "list") {
    auto list = (*store)->ListCredentials(kind);
    if (!list.ok()) return Fail(1, list.status().message());
    int64_t now = clock.NowMillis();
    std::printf("%-14s %-24s %-9s %-21s %-21s %s\n", "ID", "NAME", "ROLE", "CREATED", "EXPIRES",
                "STATE");
    for (const auto& c : *list) {
      std::string state = c.revoked_at_ms ? "revoked " + Time(c.revoked_at_ms)
                          : (c.expires_at_ms && now >= c.expires_at_ms) ? "expired"
                                                                        : "valid";
      std::string role = kind == CredentialKind::kToken ? RoleName(static_cast<Role>(c.role)) : "-";
      std::printf("%-14s %-24s %-9s %-21s %-21s %s\n", c.id.c_str(), c.name.c_str(), role.c_str(),
                  Time(c.created_at_ms).c_str(), Time(c.expires_at_ms).c_str(), state.c_str());
    }
    return 0;
  }
  if (verb == "revoke") {
    if (pos.size() != 3) return Fail(2, what + " revoke: expected one ID or NAME");
    Status s = credentials.Revoke(kind, pos[2], LocalActor());
    if (!s.ok()) return Fail(s.code() == Status::Code::kNotFound ? 2 : 1, s.message());
    std::cout << what << " " << pos[2] << " revoked\n";
    return 0;
  }
  return Fail(2, what + ": unknown command '" + verb + "'");
}

// The --config file: the alert sinks and their settings (docs/alerts.md).
Result<v1::ServerConfig> LoadServerConfig(const Flags& flags) {
  v1::ServerConfig config;
  auto path = flags.Get("config");
  if (!path) return config;
  auto text = ReadWholeFile(*path, 1u << 20);
  if (!text.ok()) return text.status();
  if (Status s = ParseJsonStrict(*text, &config, *path); !s.ok()) return s;
  return config;
}

Result<std::unique_ptr<AlertDispatcher>> MakeAlerts(const v1::ServerConfig& config, Store& store,
                                                    const Clock& clock, Counters& counters,
                                                    const PolicyState& policy, Fleet* fleet) {
  std::vector<std::unique_ptr<AlertSink>> sinks;
  std::map<std::string, std::string> types;
  int64_t longest_send_ms = 10'000;  // syslog's fixed TCP timeout
  for (const auto& c : config.alert_sinks()) {
    uint32_t t = c.has_webhook() ? c.webhook().timeout_seconds()
                 : c.has_slack() ? c.slack().timeout_seconds()
                                 : 0;
    longest_send_ms = std::max<int64_t>(longest_send_ms, int64_t{t ? t : 10} * 1000);
    auto sink = MakeAlertSink(c, clock);
    if (!sink.ok()) return sink.status();
    if (!types.emplace((*sink)->name(), (*sink)->type()).second) {
      return Status::InvalidArgument("alert sink \"" + (*sink)->name() + "\" is configured twice");
    }
    sinks.push_back(std::move(sink).value());
  }
  fleet->SetSinkTypes(types);
  AlertOptions o;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  o.owner = std::string(host) + ":" + std::to_string(::getpid()) + ":" +
            std::to_string(clock.NowMillis());
  if (config.alert_retry_max_seconds()) {
    o.retry_max_ms = int64_t{config.alert_retry_max_seconds()} * 1000;
  }
  o.lease_ms = std::max<int64_t>(o.lease_ms, 2 * longest_send_ms + 10'000);
  o.policy = &policy;
  if (config.has_enroll_failure_threshold()) {
    o.enroll_failure_threshold = config.enroll_failure_threshold();
  }
  if (config.enroll_failure_window_seconds()) {
    o.enroll_failure_window_ms = int64_t{config.enroll_failure_window_seconds()} * 1000;
  }
  for (const auto& [name, type] : types) spdlog::info("alert sink {} ({})", name, type);
  return std::make_unique<AlertDispatcher>(store, clock, counters, std::move(sinks), o);
}

int Serve(const Flags& flags) {
  if (!flags.positional().empty() && flags.positional()[0] != "serve") {
    return Fail(2, "unexpected argument '" + flags.positional()[0] + "'\n" + kUsage);
  }
  if (flags.positional().size() > 1) {
    return Fail(2, "unexpected argument '" + flags.positional()[1] + "'");
  }
  std::string listen = flags.GetOr("listen", "127.0.0.1:7400");
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Fail(2, "--listen: expected HOST:PORT, got '" + listen + "'");
  bool insecure = flags.Has("insecure");
  if (insecure && !IsLoopback(listen.substr(0, colon))) {
    return Fail(
        2, "--listen " + listen + ": --insecure (plaintext) is only allowed on a loopback address");
  }
  if (insecure && flags.Has("require-client-cert")) {
    return Fail(2, "--require-client-cert needs TLS; drop --insecure");
  }
  auto data_dir = flags.Get("data-dir");
  if (!data_dir) return Fail(2, "--data-dir is required");
  if (flags.Has("enroll-secret-file")) {
    return Fail(2,
                "--enroll-secret-file is gone: enroll secrets live hashed in the database; "
                "create one with `vigil-server secret create` (or `init`)");
  }
  AggregatorOptions opts;
  struct {
    const char* flag;
    uint64_t fallback, min, max;
    uint64_t* out;
  } numbers[] = {{"max-batch", 100, 1, 10000, nullptr},
                 {"live-window", 600, 10, 7 * 86400, nullptr},
                 {"report-rate", 60, 0, 1000000, nullptr},
                 {"max-inflight", 2000, 0, 1000000, nullptr}};
  uint64_t values[4];
  for (size_t i = 0; i < 4; ++i) {
    auto v = flags.GetUint(numbers[i].flag, numbers[i].fallback);
    if (!v.ok() || *v < numbers[i].min || *v > numbers[i].max) {
      return Fail(2, std::string("--") + numbers[i].flag + ": must be " +
                         std::to_string(numbers[i].min) + ".." + std::to_string(numbers[i].max));
    }
    values[i] = *v;
  }
  opts.max_batch = static_cast<uint32_t>(values[0]);
  opts.live_window_ms = static_cast<int64_t>(values[1]) * 1000;
  opts.reports_per_minute = static_cast<uint32_t>(values[2]);
  opts.report_burst = static_cast<uint32_t>(std::min<uint64_t>(values[2] * 2, 2000000));
  opts.max_inflight = static_cast<uint32_t>(values[3]);
  opts.approve_devices = flags.Has("approve-devices");
  auto retention_days = flags.GetUint("retention-days", 365);
  if (!retention_days.ok() || *retention_days > 36500) {
    return Fail(2, "--retention-days: must be 0..36500");
  }
  const int64_t retention_ms = static_cast<int64_t>(*retention_days) * 86400 * 1000;
  opts.require_client_cert = flags.Has("require-client-cert");

  auto config = LoadServerConfig(flags);
  if (!config.ok()) return Fail(2, "--config: " + config.status().message());

  // The start-up policy: a Policy or a PolicySet. It becomes version 1 of a new database;
  // after that, versions change only through the change process (docs/policy.md).
  v1::PolicySet initial_policy;
  *initial_policy.mutable_default_policy() = collectors::DefaultPolicy();
  std::string policy_source = "built-in policy";
  if (auto p = flags.Get("policy")) {
    auto loaded = collectors::LoadPolicySetFile(*p);
    if (!loaded.ok()) return Fail(2, "policy: " + loaded.status().message());
    initial_policy = std::move(loaded).value();
    policy_source = "--policy " + *p;
  }
  std::optional<TlsMaterial> tls;
  if (!insecure) {
    auto loaded = LoadTlsMaterial(*data_dir);
    if (!loaded.ok()) return Fail(2, loaded.status().message());
    tls = std::move(loaded).value();
    opts.ca = &tls->ca;
    if (Status s = RequireTls13(); !s.ok()) return Fail(1, s.message());
  }

  auto store = OpenDataDir(*data_dir, flags.GetOr("store", ""));
  if (!store.ok()) {
    return Fail(store.status().code() == Status::Code::kPermissionDenied ? 2 : 1,
                store.status().message());
  }

  SystemClock clock;
  Counters counters;
  Credentials credentials(**store, clock);
  auto snapshot = PolicyChanges::Bootstrap(**store, clock, initial_policy,
                                           "server (" + Printable(policy_source, 200) + ")");
  if (!snapshot.ok()) return Fail(1, "policy: " + snapshot.status().ToString());
  PolicyState policy_state(std::move(snapshot).value());
  const uint64_t policy_version = policy_state.Get()->version().number;
  Aggregator aggregator(**store, clock, credentials, counters, policy_state, opts);
  if (Status st = aggregator.ReevaluateFleet(); !st.ok()) return Fail(1, st.ToString());
  Fleet fleet(**store, clock, policy_state, counters);
  PolicyChanges policy_changes(**store, clock, policy_state, counters);
  auto alerts = MakeAlerts(*config, **store, clock, counters, policy_state, &fleet);
  if (!alerts.ok()) return Fail(2, alerts.status().message());
  // Sinks from --config, delivered by one thread per sink; their cursors exist before the first
  // report is served.
  (*alerts)->Start();
  // /metrics: vigil_report_duration_seconds, observed around each AgentService.Report call.
  Histogram report_duration(Histogram::LatencyBuckets());
  AgentServiceImpl agent_service(aggregator, &report_duration);
  FleetServiceImpl fleet_service(fleet, policy_changes, credentials, aggregator);

  // Block the shutdown signals before gRPC starts its threads, then wait for them in one place.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      listen, tls ? MakeServerCredentials(*tls) : grpc::InsecureServerCredentials(), &port);
  // A full batch of maximum-size attestations fits; anything larger is refused by gRPC itself.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<uint64_t>(opts.max_batch * opts.max_attestation_bytes + 65536, 64u << 20)));
  builder.SetMaxSendMessageSize(16 << 20);
  // Slow or silent peers cannot hold connections forever.
  builder.AddChannelArgument("grpc.server_handshake_timeout_ms", 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 64);
  // A bounded pool of request threads: beyond it gRPC refuses new calls (RESOURCE_EXHAUSTED)
  // instead of starting threads without limit; --max-inflight bounds the work they queue.
  grpc::ResourceQuota quota("vigil-server");
  quota.SetMaxThreads(256);
  builder.SetResourceQuota(quota);
  // Keep the request threads: by default the synchronous server lets all but two exit after each
  // burst and starts new ones for the next (a clone and an munmap per call under load).
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 256);
  builder.RegisterService(&agent_service);
  builder.RegisterService(&fleet_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(1, "cannot listen on " + listen);
  std::string bound = listen.substr(0, colon) + ":" + std::to_string(port);
  spdlog::info("vigil-server listening on {} ({}; policy version {}, data {}{}{})", bound,
               tls ? "TLS 1.3" : "PLAINTEXT", policy_version, *data_dir,
               opts.require_client_cert ? ", client certificates required" : "",
               opts.approve_devices ? ", new devices need approval" : "");
  // ---- HTTPS API, /metrics and the dashboard (server/http_api.h), with --http-listen ----
  // Declared after everything it uses, so it is stopped first: on SIGTERM Serve returns and
  // ~HttpServer stops serving and joins its threads.
  HttpApi http_api(fleet, policy_changes, credentials, aggregator, counters, report_duration);
  std::unique_ptr<HttpServer> http_server;
  if (auto http_listen = flags.Get("http-listen")) {
    if (!tls) {
      server->Shutdown();
      return Fail(2, "--http-listen needs the server's TLS certificate; drop --insecure");
    }
    HttpServerOptions http_options;
    http_options.listen = *http_listen;
    auto started = HttpServer::Start(http_options, tls->server, http_api, counters);
    if (!started.ok()) {
      server->Shutdown();
      return Fail(started.status().code() == Status::Code::kInvalidArgument ? 2 : 1,
                  started.status().message());
    }
    http_server = std::move(started).value();
    spdlog::info("HTTPS API, /metrics and dashboard on https://{}/ (TLS 1.3)",
                 http_server->bound_address());
    if (auto ready = flags.Get("http-ready-file")) {
      if (Status st = WriteFileAtomic(*ready, http_server->bound_address() + "\n", 0644);
          !st.ok()) {
        server->Shutdown();
        return Fail(1, st.message());
      }
    }
  } else if (flags.Has("http-ready-file")) {
    server->Shutdown();
    return Fail(2, "--http-ready-file needs --http-listen");
  }
  // ---- end of the HTTPS API ----
  if (auto ready = flags.Get("ready-file")) {
    if (Status st = WriteFileAtomic(*ready, bound + "\n", 0644); !st.ok()) {
      server->Shutdown();
      return Fail(1, st.message());
    }
  }
  // Background jobs (history retention, stale and enrollment-failure alerts), claimed through
  // the store so that one replica runs each per period. A minute's granularity is plenty.
  std::mutex jobs_mu;
  std::condition_variable jobs_cv;
  bool stopping = false;
  BackgroundJobs jobs(**store, clock, counters, retention_ms);
  std::thread jobs_thread([&] {
    std::unique_lock<std::mutex> lock(jobs_mu);
    while (!stopping) {
      lock.unlock();
      jobs.RunDue();
      (*alerts)->RaiseDue();
      lock.lock();
      jobs_cv.wait_for(lock, std::chrono::minutes(1), [&] { return stopping; });
    }
  });
  // Exception expiry, and versions or exceptions changed by other replicas: every second.
  std::thread policy_thread([&] {
    std::unique_lock<std::mutex> lock(jobs_mu);
    while (!stopping) {
      lock.unlock();
      if (auto r = policy_changes.Tick(); !r.ok()) {
        spdlog::error("policy refresh: {}", r.status().ToString());
      }
      lock.lock();
      jobs_cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; });
    }
  });
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  {
    std::lock_guard<std::mutex> lock(jobs_mu);
    stopping = true;
  }
  jobs_cv.notify_all();
  jobs_thread.join();
  policy_thread.join();
  (*alerts)->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

int Main(int argc, char** argv) {
  // Everything this process creates (database, WAL, keys) is private to the server's user.
  ::umask(077);
  FlagSpec spec{{"listen",         "data-dir",
                 "policy",         "ready-file",
                 "max-batch",      "live-window",
                 "report-rate",    "max-inflight",
                 "server-address", "san",
                 "bundle",         "secret-expires",
                 "expires",        "role",
                 "name",           "enroll-secret-file",
                 "store",          "retention-days",
                 "config",         "http-listen",
                 "http-ready-file"},
                {"help", "insecure", "require-client-cert", "approve-devices"}};
  auto flags = Flags::Parse(argc, argv, 1, spec);
  if (!flags.ok()) return Fail(2, flags.status().message() + "\n" + kUsage);
  if (flags->Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  const auto& pos = flags->positional();
  std::string cmd = pos.empty() ? "serve" : pos[0];
  if (cmd == "init") {
    if (pos.size() != 1) return Fail(2, "init takes no arguments");
    return Init(*flags);
  }
  if (cmd == "cert") {
    if (pos.size() != 2 || pos[1] != "renew") return Fail(2, "cert: expected `cert renew`");
    auto data_dir = flags->Get("data-dir");
    auto sans = flags->Get("san");
    if (!data_dir || !sans) return Fail(2, "cert renew needs --data-dir and --san");
    auto tls = RenewServerCert(*data_dir, SplitComma(*sans), SystemClock().NowMillis() / 1000);
    if (!tls.ok())
      return Fail(tls.status().code() == Status::Code::kInvalidArgument ? 2 : 1,
                  tls.status().message());
    std::cout << "new server certificate in " << TlsDir(*data_dir) << "/server.crt\n";
    return 0;
  }
  if (cmd == "token") return ManageCredentials(CredentialKind::kToken, *flags);
  if (cmd == "secret") return ManageCredentials(CredentialKind::kEnrollSecret, *flags);
  return Serve(*flags);
}

}  // namespace
}  // namespace vigil::server

int main(int argc, char** argv) { return vigil::server::Main(argc, argv); }

// vigil-server: the composition root. Parses flags, opens the store, loads the policy and the
// enroll secret, and serves AgentService and FleetService until SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "collectors/policy.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/flags.h"
#include "server/aggregator.h"
#include "server/fleet.h"
#include "server/services.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr const char* kUsage =
    R"(usage: vigil-server --data-dir DIR --enroll-secret-file FILE [options]

Serves AgentService (enrollment, reports) and FleetService (vigilctl) over gRPC.

  --listen HOST:PORT          address to listen on (default 127.0.0.1:7400; port 0 = any free port)
  --data-dir DIR              where the SQLite database lives (created, mode 0700)
  --policy FILE               policy JSON (default: the built-in example policy)
  --enroll-secret-file FILE   file holding the enroll secret agents must present (16+ chars)
  --ready-file FILE           write the bound HOST:PORT here once serving (for scripts and tests)
  --max-batch N               attestations per report (default 100)

Plaintext gRPC is only served on loopback addresses; TLS arrives with the transport work.
Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad flags or configuration.
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

int Main(int argc, char** argv) {
  FlagSpec spec{{"listen", "data-dir", "policy", "enroll-secret-file", "ready-file", "max-batch"},
                {"help"}};
  auto flags = Flags::Parse(argc, argv, 1, spec);
  if (!flags.ok()) return Fail(2, flags.status().message() + "\n" + kUsage);
  if (flags->Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (!flags->positional().empty())
    return Fail(2, "unexpected argument '" + flags->positional()[0] + "'");
  std::string listen = flags->GetOr("listen", "127.0.0.1:7400");
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Fail(2, "--listen: expected HOST:PORT, got '" + listen + "'");
  if (!IsLoopback(listen.substr(0, colon))) {
    return Fail(2, "--listen " + listen +
                       ": refusing plaintext gRPC on a non-loopback address (use 127.0.0.1)");
  }
  auto data_dir = flags->Get("data-dir");
  if (!data_dir) return Fail(2, "--data-dir is required");
  auto secret_file = flags->Get("enroll-secret-file");
  if (!secret_file) return Fail(2, "--enroll-secret-file is required");
  auto max_batch = flags->GetUint("max-batch", 100);
  if (!max_batch.ok() || *max_batch == 0 || *max_batch > 10000) {
    return Fail(2, "--max-batch: must be 1..10000");
  }

  v1::Policy policy = collectors::DefaultPolicy();
  if (auto p = flags->Get("policy")) {
    auto loaded = collectors::LoadPolicyFile(*p);
    if (!loaded.ok()) return Fail(2, "policy: " + loaded.status().message());
    policy = std::move(loaded).value();
  }
  auto secret = ReadSecretFile(*secret_file);
  if (!secret.ok()) return Fail(2, "enroll secret: " + secret.status().message());
  const std::string& s = *secret;
  if (s.size() < 16)
    return Fail(2, "enroll secret in " + *secret_file + " must be at least 16 characters");

  if (Status st = MakeDirs(*data_dir, 0700); !st.ok()) return Fail(2, st.message());
  auto store = OpenSqliteStore(*data_dir + "/vigil.db");
  if (!store.ok()) return Fail(1, store.status().message());

  SystemClock clock;
  AggregatorOptions opts;
  opts.enroll_secret = s;
  opts.max_batch = static_cast<uint32_t>(*max_batch);
  Aggregator aggregator(**store, clock, policy, opts);
  if (Status st = aggregator.ReevaluateFleet(); !st.ok()) return Fail(1, st.ToString());
  Fleet fleet(**store, clock, aggregator.policy());
  AgentServiceImpl agent_service(aggregator);
  FleetServiceImpl fleet_service(fleet);

  // Block the shutdown signals before gRPC starts its threads, then wait for them in one place.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.RegisterService(&agent_service);
  builder.RegisterService(&fleet_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(1, "cannot listen on " + listen);
  std::string bound = listen.substr(0, colon) + ":" + std::to_string(port);
  spdlog::info("vigil-server listening on {} (policy {}, data {})", bound,
               collectors::PolicyVersion(policy), *data_dir);
  if (auto ready = flags->Get("ready-file")) {
    if (Status st = WriteFileAtomic(*ready, bound + "\n", 0644); !st.ok()) {
      server->Shutdown();
      return Fail(1, st.message());
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace
}  // namespace vigil::server

int main(int argc, char** argv) { return vigil::server::Main(argc, argv); }

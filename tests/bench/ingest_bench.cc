// Prints the server's ingest figures on this machine, in one run: the Ed25519 verify rate with
// OpenSSL on one thread and on every core (the physical ceiling of verified attestations per
// second), and Vigil's verified-and-committed attestations per second through the Aggregator
// on the embedded SQLite store (no gRPC), with its ratio to that ceiling. A program, not a timed
// test: the baseline for the scale work (group commit, parallel verification).
//
// Usage: ingest_bench [SECONDS_PER_VERIFY_FIGURE (default 3)] [DEVICES (default 64)]
//                     [ATTESTATIONS_PER_RUN (default 10000)] [POSTGRESQL_URL]
// With a PostgreSQL URL (of an empty database or schema) the ingest runs are repeated on it.
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "collectors/collectors.h"
#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/postgres_store.h"
#include "server/sqlite_store.h"

namespace {

using namespace vigil;
using namespace vigil::server;
using Steady = std::chrono::steady_clock;

double Since(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

// A realistic attestation: the three checks with evidence of typical size.
v1::Attestation Sample(const std::string& device_id, uint64_t seq, int64_t now_ms) {
  v1::Attestation a;
  a.set_device_id(device_id);
  a.set_sequence(seq);
  a.mutable_issued_at()->set_seconds(now_ms / 1000);
  a.set_agent_version("0.1.0");
  a.mutable_platform()->set_os("linux");
  a.mutable_platform()->set_os_name("Debian GNU/Linux 12 (bookworm)");
  a.mutable_platform()->set_hostname("laptop-" + device_id.substr(4, 6));
  for (const char* id :
       {collectors::kScreenLock, collectors::kPasswordPolicy, collectors::kUsbStorage}) {
    auto* c = a.add_checks();
    c->set_check(id);
    c->set_status(v1::PASS);
    c->set_reason(std::string(120, 'r'));
    c->mutable_evidence()->mutable_usb_storage()->add_warnings(std::string(400, 'w'));
  }
  return a;
}

// CPU seconds (user + system) this process has used.
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Bytes this process has asked the kernel to write (/proc/self/io wchar): the store's write
// volume (WAL frames and checkpoints), which is what its fsyncs pay for.
double WrittenBytes() {
  FILE* f = std::fopen("/proc/self/io", "r");
  if (f == nullptr) return 0;
  char line[128];
  double v = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "wchar:", 6) == 0) v = std::atof(line + 6);
  }
  std::fclose(f);
  return v;
}

// OpenSSL's Ed25519 verification, as the server used before libsodium (for the comparison).
bool OpensslVerify(const std::string& pub, const std::string& msg, const std::string& sig) {
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(pub.data()), pub.size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = pkey != nullptr && ctx != nullptr &&
            EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return ok;
}

// Verifications per second over `threads` threads for `seconds`, with OpenSSL or with the
// server's verifier (signing::Verify, libsodium).
double VerifyRate(bool openssl, const std::vector<v1::SignedAttestation>& signed_atts,
                  const std::string& pub, int threads, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> total{0};
  std::vector<std::thread> pool;
  auto t0 = Steady::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t n = 0;
      for (size_t i = static_cast<size_t>(t); !stop.load(std::memory_order_relaxed); ++i) {
        const auto& s = signed_atts[i % signed_atts.size()];
        std::string msg = std::string(signing::kSignatureDomain) + s.attestation();
        bool ok = openssl ? OpensslVerify(pub, msg, s.signature())
                          : signing::Verify(pub, msg, s.signature()).ok();
        if (!ok) std::abort();
        ++n;
      }
      total += n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  return static_cast<double>(total.load()) / Since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  int devices = argc > 2 ? std::atoi(argv[2]) : 64;
  int per_run = argc > 3 ? std::atoi(argv[3]) : 10000;
  std::string postgres = argc > 4 ? argv[4] : "";  // an empty database (or schema) to fill
  if (seconds <= 0 || devices <= 0 || per_run <= 0) {
    std::fprintf(stderr, "usage: ingest_bench [SECONDS] [DEVICES]\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  SystemClock clock;

  auto key = *signing::DeviceKey::Generate();
  std::vector<v1::SignedAttestation> sample;
  for (uint64_t i = 1; i <= 256; ++i) {
    sample.push_back(
        *signing::SignAttestation(Sample("dev-bench00000", i, clock.NowMillis()), key));
  }
  std::printf("attestation size: %zu bytes signed\n", sample[0].ByteSizeLong());
  double one = VerifyRate(true, sample, key.PublicKey(), 1, seconds);
  double all = VerifyRate(true, sample, key.PublicKey(), cores, seconds);
  std::printf("Ed25519 verify (OpenSSL): %.0f/s on 1 thread, %.0f/s on %d threads (the ceiling)\n",
              one, all, cores);
  double sodium_one = VerifyRate(false, sample, key.PublicKey(), 1, seconds);
  double sodium_all = VerifyRate(false, sample, key.PublicKey(), cores, seconds);
  std::printf(
      "Ed25519 verify (libsodium, the server's): %.0f/s on 1 thread, %.0f/s on %d threads; "
      "%.1f us CPU each\n",
      sodium_one, sodium_all, cores, 1e6 / sodium_one);

  // The same fleet and reporters on one store: enroll, then 1, `cores` and one-per-device
  // reporting threads. With PostgreSQL the database's own CPU and writes are another process's.
  auto run = [&](const char* label, Store& store) {
    Counters counters;
    Credentials credentials(store, clock);
    std::string secret = *credentials.Create(CredentialKind::kEnrollSecret, "bench", 0, 0, "bench");
    AggregatorOptions opts;
    opts.reports_per_minute = 0;
    v1::Policy policy;
    policy.set_checkin_window_seconds(3600);
    Aggregator aggregator(store, clock, credentials, counters, policy, opts);

    struct Device {
      signing::DeviceKey key;
      std::string id;
      uint64_t seq = 0;
    };
    std::vector<Device> fleet;
    for (int i = 0; i < devices; ++i) {
      auto k = *signing::DeviceKey::Generate();
      v1::EnrollRequest req;
      req.set_enroll_secret(secret);
      req.set_public_key(k.PublicKey());
      fleet.push_back({k, aggregator.Enroll(req)->device_id()});
    }

    // Signed ahead of time (agents sign, not the server): each thread owns a slice of the fleet
    // and reports one attestation per call, as agents do, until its share is done.
    // 1 and `cores` reporters show the per-call cost; one reporter per device (as many agents
    // reporting at once through gRPC's thread pool) shows what group commit does with concurrency.
    for (int threads : {1, cores, devices}) {
      std::vector<std::vector<v1::ReportRequest>> work(static_cast<size_t>(threads));
      for (int i = 0; i < per_run; ++i) {
        Device& d = fleet[static_cast<size_t>(i) % fleet.size()];
        size_t owner = (static_cast<size_t>(i) % fleet.size()) % static_cast<size_t>(threads);
        v1::ReportRequest req;
        *req.add_attestations() =
            *signing::SignAttestation(Sample(d.id, ++d.seq, clock.NowMillis()), d.key);
        work[owner].push_back(std::move(req));
      }
      std::atomic<uint64_t> committed{0}, failed{0};
      std::vector<std::thread> pool;
      auto t0 = Steady::now();
      double cpu0 = CpuSeconds();
      double written0 = WrittenBytes();
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          for (const auto& req : work[static_cast<size_t>(t)]) {
            auto r = aggregator.Report(req);
            (r.ok() && r->acks(0).code() == kAckOk ? committed : failed)++;
          }
        });
      }
      for (auto& th : pool) th.join();
      double rate = static_cast<double>(committed.load()) / Since(t0);
      double n = static_cast<double>(committed.load());
      double cpu_us = 1e6 * (CpuSeconds() - cpu0) / n;
      double written_kb = (WrittenBytes() - written0) / 1024 / n;
      std::printf(
          "%s ingest, %d reporting threads, %d attestations one per report: %.0f verified and "
          "committed/s, %llu failed; %.1f%% of the %d-core OpenSSL verify ceiling; %.0f us CPU "
          "and %.1f KiB written per attestation by this process\n",
          label, threads, per_run, rate, static_cast<unsigned long long>(failed.load()),
          100.0 * rate / all, cores, cpu_us, written_kb);
    }
  };

  char tmpl[] = "/tmp/vigil-ingest-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::string dir = tmpl;
  {
    auto store = OpenSqliteStore(dir + "/vigil.db");
    if (!store.ok()) return 1;
    run("SQLite", **store);
  }
  std::filesystem::remove_all(dir);
  if (!postgres.empty()) {
    auto store = OpenPostgresStore(postgres);
    if (!store.ok()) {
      std::fprintf(stderr, "ingest_bench: %s\n", store.status().ToString().c_str());
      return 1;
    }
    run("PostgreSQL", **store);
  }
  return 0;
}

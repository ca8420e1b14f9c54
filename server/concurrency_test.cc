// The server's domain code under concurrent use, as the gRPC thread pool drives it: several
// devices enrolling and reporting at once while the fleet is read and a rogue guesses enroll
// secrets, and the same attestation arriving on several connections at once. No gRPC here, so the
// ThreadSanitizer build (which cannot see into the uninstrumented Debian gRPC) checks exactly
// Vigil's locking. CI runs these cases under TSan with --test-case='*concurrent*'
// (scripts/test.sh); keep "concurrent" in the names of new cases that belong there.
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "collectors/collectors.h"
#include "common/temp_dir.h"
#include "proto/audit_chain.h"
#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/limits.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr int64_t kStart = 1'800'000'000'000;

// Everything a running server holds, minus gRPC. OpenServer is the only code here that knows how
// the domain objects are built: adapt it (alone) when their constructors or options change.
struct Server {
  FakeClock clock{kStart};
  Counters counters;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  std::string enroll_secret;  // what agents present to Enroll
};

std::unique_ptr<Server> OpenServer(const std::string& db_path) {
  // spdlog's registry is a function-local static inside the (uninstrumented) Debian library, so
  // ThreadSanitizer cannot see its thread-safe initialisation. Create it here, before any thread,
  // as vigil-server's main() does by logging at start-up.
  spdlog::default_logger_raw();
  auto s = std::make_unique<Server>();
  auto store = OpenSqliteStore(db_path);
  REQUIRE(store.ok());
  s->store = std::move(store).value();
  s->credentials = std::make_unique<Credentials>(*s->store, s->clock);
  auto secret =
      s->credentials->Create(CredentialKind::kEnrollSecret, "concurrency-test", 0, 0, "test");
  REQUIRE(secret.ok());
  s->enroll_secret = *secret;
  v1::Policy policy;
  policy.set_checkin_window_seconds(3600);  // every check NOT_APPLICABLE: clean = COMPLIANT
  AggregatorOptions opts;
  opts.reports_per_minute = 600;  // the limiter is exercised but never refuses these tests
  opts.report_burst = 1000;
  s->aggregator =
      std::make_unique<Aggregator>(*s->store, s->clock, *s->credentials, s->counters, policy, opts);
  s->fleet = std::make_unique<Fleet>(*s->store, s->clock, s->aggregator->policy(), s->counters);
  return s;
}

// Failures seen on worker threads, checked on the test's thread (doctest's REQUIRE throws, which
// must not happen on another thread).
class Problems {
 public:
  void Add(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (list_.size() < 20) list_.push_back(what);
    ++count_;
  }
  void Check() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (const auto& p : list_) all += "\n  " + p;
    INFO(count_, " problems on worker threads:", all);
    CHECK(count_ == 0);
  }

 private:
  std::mutex mu_;
  std::vector<std::string> list_;
  size_t count_ = 0;
};

// A clean attestation is COMPLIANT; one carrying a collection error is NON_COMPLIANT.
v1::Attestation Att(const std::string& device_id, uint64_t seq, bool failing) {
  v1::Attestation a;
  a.set_device_id(device_id);
  a.set_sequence(seq);
  a.mutable_issued_at()->set_seconds(kStart / 1000);
  a.mutable_platform()->set_os("linux");
  a.mutable_platform()->set_hostname("host-" + device_id);
  for (const char* id :
       {collectors::kScreenLock, collectors::kPasswordPolicy, collectors::kUsbStorage}) {
    auto* c = a.add_checks();
    c->set_check(id);
    c->set_status(v1::PASS);
    if (failing && std::string(id) == collectors::kUsbStorage) {
      c->mutable_evidence()->set_collection_error("cannot read /proc/modules");
    } else {
      c->mutable_evidence()->mutable_usb_storage();
    }
  }
  return a;
}

// Enroll and Report as an agent would call them; errors are returned as text, "" when fine.
std::string Enroll(Server& s, const signing::DeviceKey& key, std::string* device_id,
                   const std::string& secret = "") {
  v1::EnrollRequest req;
  req.set_enroll_secret(secret.empty() ? s.enroll_secret : secret);
  req.set_public_key(key.PublicKey());
  req.set_hostname("laptop");
  auto r = s.aggregator->Enroll(req);
  if (!r.ok()) return "enroll: " + r.status().ToString();
  *device_id = r->device_id();
  return "";
}

std::string Send(Server& s, const v1::SignedAttestation& signed_att, v1::AttestationAck* ack) {
  v1::ReportRequest req;
  *req.add_attestations() = signed_att;
  auto r = s.aggregator->Report(req);
  if (!r.ok()) return "report: " + r.status().ToString();
  if (r->acks_size() != 1) return "report: " + std::to_string(r->acks_size()) + " acks";
  *ack = r->acks(0);
  return "";
}

v1::DeviceStatus StatusOf(Server& s, const std::string& id) {
  v1::GetDeviceRequest req;
  req.set_device_id(id);
  auto r = s.fleet->GetDevice(req);
  REQUIRE(r.ok());
  return r->device().status();
}

TEST_CASE("concurrent: devices enroll and report while the fleet is read") {
  constexpr int kDevices = 4;
  constexpr uint64_t kReports = 20;
  constexpr int kGuesses = 5;
  TempDir dir("vigil-conc");
  auto server = OpenServer(dir / "vigil.db");
  Server& s = *server;
  Problems problems;

  std::mutex ids_mu;
  std::vector<std::string> ids;  // enrolled so far, for the readers
  std::atomic<int> writers_left{kDevices};
  std::vector<std::thread> threads;

  for (int w = 0; w < kDevices; ++w) {
    threads.emplace_back([&, w] {
      auto key = signing::DeviceKey::Generate();
      std::string id;
      std::string err = key.ok() ? Enroll(s, *key, &id) : "key: " + key.status().ToString();
      if (!err.empty()) {
        problems.Add(err);
        --writers_left;
        return;
      }
      {
        std::lock_guard<std::mutex> lock(ids_mu);
        ids.push_back(id);
      }
      for (uint64_t seq = 1; seq <= kReports; ++seq) {
        // Odd writers end NON_COMPLIANT, even ones COMPLIANT; statuses flip along the way.
        bool failing = (seq + static_cast<uint64_t>(w)) % 2 == 0;
        auto signed_att = signing::SignAttestation(Att(id, seq, failing), *key);
        if (!signed_att.ok()) {
          problems.Add("sign: " + signed_att.status().ToString());
          break;
        }
        v1::AttestationAck ack;
        if (err = Send(s, *signed_att, &ack); !err.empty()) {
          problems.Add(id + " " + err);
          break;
        }
        v1::DeviceStatus want = failing ? v1::NON_COMPLIANT : v1::COMPLIANT;
        if (ack.code() != kAckOk || ack.device_status() != want) {
          problems.Add(id + " seq " + std::to_string(seq) + ": code " + std::to_string(ack.code()) +
                       " status " + v1::DeviceStatus_Name(ack.device_status()) + " " +
                       ack.message());
        }
        // A lost acknowledgement: the agent resends, and the server must not count it twice.
        if (seq % 4 == 0) {
          if (err = Send(s, *signed_att, &ack); !err.empty() || ack.code() != kAckAlreadyExists) {
            problems.Add(id + " resend of " + std::to_string(seq) + ": " + err + " code " +
                         std::to_string(ack.code()));
          }
        }
      }
      --writers_left;
    });
  }

  // A rogue guessing enroll secrets meanwhile: refused, and its failures audited and counted
  // alongside the devices' reports.
  threads.emplace_back([&] {
    auto key = signing::DeviceKey::Generate();
    if (!key.ok()) {
      problems.Add("key: " + key.status().ToString());
      return;
    }
    for (int i = 0; i < kGuesses; ++i) {
      std::string id;
      std::string guess = s.enroll_secret;
      guess.back() = guess.back() == 'A' ? 'B' : 'A';
      if (Enroll(s, *key, &id, guess).empty()) problems.Add("a wrong enroll secret was accepted");
    }
  });

  std::atomic<int> reads{0};
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      std::map<std::string, uint64_t> newest;  // the newest sequence this reader has seen
      do {
        auto list = s.fleet->ListDevices(v1::ListDevicesRequest());
        if (!list.ok()) problems.Add("list: " + list.status().ToString());
        auto summary = s.fleet->Summary(v1::SummaryRequest());
        if (!summary.ok()) {
          problems.Add("summary: " + summary.status().ToString());
        } else if (summary->total() > kDevices) {
          problems.Add("summary: total " + std::to_string(summary->total()));
        }
        s.fleet->Stats();
        auto audit = s.fleet->ListAudit(v1::ListAuditRequest());
        if (!audit.ok()) problems.Add("audit: " + audit.status().ToString());
        std::vector<std::string> known;
        {
          std::lock_guard<std::mutex> lock(ids_mu);
          known = ids;
        }
        for (const auto& id : known) {
          v1::GetDeviceRequest req;
          req.set_device_id(id);
          req.set_history_limit(1000);
          auto d = s.fleet->GetDevice(req);
          if (!d.ok()) {
            problems.Add("get " + id + ": " + d.status().ToString());
            continue;
          }
          if (d->device().status() == v1::TAMPERED) problems.Add(id + " read as TAMPERED");
          std::set<uint64_t> seqs;
          for (const auto& h : d->history()) seqs.insert(h.sequence());
          if (seqs.size() != static_cast<size_t>(d->history_size())) {
            problems.Add(id + ": a sequence appears twice in the history");
          }
          // History only grows, and always as 1..n.
          uint64_t n = seqs.empty() ? 0 : *seqs.rbegin();
          if (n != seqs.size()) problems.Add(id + ": history is not 1.." + std::to_string(n));
          if (n < newest[id]) problems.Add(id + ": history went backwards");
          newest[id] = n;
        }
        ++reads;
      } while (writers_left.load() > 0);
    });
  }
  for (auto& t : threads) t.join();
  problems.Check();
  CHECK(reads.load() >= 2);

  REQUIRE(ids.size() == kDevices);
  size_t compliant = 0;
  for (const auto& id : ids) {
    auto history = s.store->History(id, 1000);
    REQUIRE(history.ok());
    std::set<uint64_t> seqs;
    for (const auto& h : *history) seqs.insert(h.sequence);
    CHECK(history->size() == kReports);  // each attestation stored exactly once
    CHECK(seqs.size() == kReports);
    CHECK(*seqs.rbegin() == kReports);
    v1::DeviceStatus status = StatusOf(s, id);
    CHECK((status == v1::COMPLIANT || status == v1::NON_COMPLIANT));
    if (status == v1::COMPLIANT) ++compliant;
  }
  CHECK(compliant == kDevices / 2);
  auto summary = s.fleet->Summary(v1::SummaryRequest());
  REQUIRE(summary.ok());
  CHECK(summary->total() == kDevices);
  for (const auto& c : summary->by_status()) {
    if (c.status() == v1::COMPLIANT) CHECK(c.count() == kDevices / 2);
    if (c.status() == v1::NON_COMPLIANT) CHECK(c.count() == kDevices - kDevices / 2);
    if (c.status() == v1::TAMPERED) CHECK(c.count() == 0);
  }
  // Enrollments and failed guesses appended to the audit log from several threads: one chain.
  auto audit = s.store->ListAudit(0, 100000);
  REQUIRE(audit.ok());
  CHECK(audit->size() >= static_cast<size_t>(kDevices + kGuesses));
  auto chain = audit::VerifyChain(*audit, std::string(audit::kHashSize, '\0'));
  CHECK_MESSAGE(chain.ok(), chain.status().ToString());
}

TEST_CASE("concurrent: the same attestation at once is stored once and never TAMPERED") {
  constexpr int kSenders = 6;
  constexpr uint64_t kRounds = 8;
  TempDir dir("vigil-conc");
  auto server = OpenServer(dir / "vigil.db");
  Server& s = *server;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id;
  REQUIRE(Enroll(s, *key, &id) == "");

  for (uint64_t seq = 1; seq <= kRounds; ++seq) {
    auto signed_att = signing::SignAttestation(Att(id, seq, false), *key);
    REQUIRE(signed_att.ok());
    std::vector<v1::AttestationAck> acks(kSenders);
    std::vector<std::string> errors(kSenders);
    std::latch start(kSenders);
    std::vector<std::thread> threads;
    for (int i = 0; i < kSenders; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();  // all at once, as retries on several connections would
        errors[i] = Send(s, *signed_att, &acks[i]);
      });
    }
    for (auto& t : threads) t.join();
    int ok = 0, already = 0;
    for (int i = 0; i < kSenders; ++i) {
      INFO("seq ", seq, " sender ", i, ": ", errors[i], " ", acks[i].message());
      CHECK(errors[i] == "");
      CHECK(acks[i].device_status() != v1::TAMPERED);
      CHECK(acks[i].sequence() == seq);
      if (acks[i].code() == kAckOk) ++ok;
      if (acks[i].code() == kAckAlreadyExists) ++already;
    }
    CHECK(ok == 1);
    CHECK(already == kSenders - 1);
  }
  auto history = s.store->History(id, 1000);
  REQUIRE(history.ok());
  CHECK(history->size() == kRounds);
  CHECK(StatusOf(s, id) == v1::COMPLIANT);
}

TEST_CASE("concurrent: one key enrolling from several threads is one device") {
  constexpr int kThreads = 6;
  TempDir dir("vigil-conc");
  auto server = OpenServer(dir / "vigil.db");
  Server& s = *server;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::vector<std::string> ids(kThreads), errors(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      errors[i] = Enroll(s, *key, &ids[i]);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    CHECK(errors[i] == "");
    CHECK(ids[i] == ids[0]);
  }
  auto summary = s.fleet->Summary(v1::SummaryRequest());
  REQUIRE(summary.ok());
  CHECK(summary->total() == 1);
}

}  // namespace
}  // namespace vigil::server

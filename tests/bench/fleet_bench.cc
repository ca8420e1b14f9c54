// Prints the security team's query latencies on a large simulated fleet, in one run: fills a
// store with DEVICES devices (a realistic mix of statuses, each with a real latest attestation),
// then times, through the same Store and Fleet code the server's RPCs use, the per-status counts
// (`vigilctl summary`) and the first page of NON_COMPLIANT devices (`vigilctl devices --status
// NON_COMPLIANT`). A program, not a timed test; scripts/fleet-bench.sh adds the real server's
// RSS and vigilctl's wall time on the same database.
//
// Usage: fleet_bench DEVICES [sqlite:PATH | postgresql://...]   (default: a temporary SQLite)
// The devices are added to whatever the store holds; give an empty database.
#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "collectors/collectors.h"
#include "collectors/policy.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/postgres_store.h"
#include "server/sqlite_store.h"
#include "server/store_sql.h"

namespace {

using namespace vigil;
using namespace vigil::server;
using Steady = std::chrono::steady_clock;

// The mix, by device number i: 0.1% revoked, 0.1% tampered, 0.1% pending, 0.5% never reported,
// 1% stale (two days silent), and of the rest 10% NON_COMPLIANT. The same expressions for both
// SQL dialects, with {i} the number and {now} the current time in ms.
std::string Columns(const std::string& id, const std::string& key, const std::string& now) {
  const std::string i = "n";  // the generated device number
  return id + ", " + key + ", " + key + ", 'host-' || " + i + ", 'linux', $PLATFORM, " + now +
         " - 86400000, CASE WHEN " + i + " % 1000 = 5 OR " + i + " % 200 = 1 THEN 0 WHEN " + i +
         " % 100 = 2 THEN " + now + " - 172800000 ELSE " + now + " - (" + i +
         " % 600) * 1000 END, 1, CASE WHEN " + i + " % 10 = 4 THEN 2 ELSE 1 END, CASE WHEN " + i +
         " % 10 = 4 THEN 'usb_storage: FAIL' ELSE 'all checks pass' END, CASE WHEN " + i +
         " % 10 = 4 THEN ',usb_storage,' ELSE ',' END, CASE WHEN " + i +
         " % 1000 = 3 THEN 1 ELSE 0 END, $POLICY, $LATEST, CASE WHEN " + i +
         " % 1000 = 5 THEN 1 ELSE 0 END, CASE WHEN " + i + " % 1000 = 7 THEN " + now +
         " ELSE 0 END";
}

constexpr const char* kInsert =
    "INSERT INTO devices(id, key_id, public_key, hostname, os, platform, enrolled_at_ms, "
    "last_seen_ms, last_sequence, status, status_reason, failing_checks, tampered, "
    "policy_version, latest, pending, revoked_at_ms) ";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

vigil::Status FillSqlite(const std::string& path, int64_t n, int64_t now,
                         const std::string& platform, const std::string& policy,
                         const std::string& latest) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return vigil::Status::IoError("open");
  std::string sql = std::string("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM ") +
                    "seq WHERE n < ?4) " + kInsert + "SELECT " +
                    Columns("printf('dev-%08d', n)", "randomblob(32)", std::to_string(now)) +
                    " FROM seq";
  sql = Replace(Replace(Replace(sql, "$PLATFORM", "?1"), "$POLICY", "?2"), "$LATEST", "?3");
  sqlite3_stmt* st = nullptr;
  vigil::Status out = vigil::Status::Ok();
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    out = vigil::Status::IoError(sqlite3_errmsg(db));
  } else {
    sqlite3_bind_blob(st, 1, platform.data(), static_cast<int>(platform.size()), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, policy.data(), static_cast<int>(policy.size()), SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, latest.data(), static_cast<int>(latest.size()), SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, n);
    if (sqlite3_step(st) != SQLITE_DONE) out = vigil::Status::IoError(sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

vigil::Status FillPostgres(const std::string& url, int64_t n, int64_t now,
                           const std::string& platform, const std::string& policy,
                           const std::string& latest) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string m = PQerrorMessage(conn);
    PQfinish(conn);
    return vigil::Status::IoError(m);
  }
  std::string sql =
      std::string(kInsert) + "SELECT " +
      Columns("'dev-' || lpad(n::text, 8, '0')",
              "decode(md5(n::text) || md5('k' || n::text), 'hex')", std::to_string(now)) +
      " FROM generate_series(1, $4::bigint) AS n";
  sql = Replace(Replace(Replace(sql, "$PLATFORM", "$1::bytea"), "$POLICY", "$2::text"), "$LATEST",
                "$3::bytea");
  std::string count = std::to_string(n);
  const char* values[] = {platform.data(), policy.data(), latest.data(), count.c_str()};
  const int lengths[] = {static_cast<int>(platform.size()), static_cast<int>(policy.size()),
                         static_cast<int>(latest.size()), static_cast<int>(count.size())};
  const int formats[] = {1, 1, 1, 0};
  // Row by row through the counting trigger this bulk load would take minutes; the counters are
  // computed once afterwards instead, as the schema does when it adds them to existing devices.
  PQclear(PQexec(conn, "ALTER TABLE devices DISABLE TRIGGER devices_count"));
  PGresult* r = PQexecParams(conn, sql.c_str(), 4, nullptr, values, lengths, formats, 0);
  vigil::Status out = PQresultStatus(r) == PGRES_COMMAND_OK
                          ? vigil::Status::Ok()
                          : vigil::Status::IoError(PQresultErrorMessage(r));
  PQclear(r);
  PQclear(PQexec(conn, "ALTER TABLE devices ENABLE TRIGGER devices_count"));
  if (out.ok()) {
    std::string recount =
        "DELETE FROM status_counts; INSERT INTO status_counts(bucket, n) SELECT " +
        vigil::server::store_sql::Bucket("") +
        ", COUNT(*) FROM devices GROUP BY 1; ANALYZE devices";
    r = PQexec(conn, recount.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      out = vigil::Status::IoError(PQresultErrorMessage(r));
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

// Median wall time of `runs` calls, in ms.
double MedianMs(int runs, const std::function<void()>& f) {
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Steady::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

long MaxRssKb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::atoll(argv[1]) <= 0) {
    std::fprintf(stderr, "usage: fleet_bench DEVICES [sqlite:PATH | postgresql://...]\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const int64_t n = std::atoll(argv[1]);
  std::string target = argc > 2 ? argv[2] : "";
  std::string tmp;
  if (target.empty()) {
    char tmpl[] = "/tmp/vigil-fleet-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    tmp = tmpl;
    target = "sqlite:" + tmp + "/vigil.db";
  }
  const bool postgres = target.rfind("postgres", 0) == 0;
  auto open = [&]() {
    return postgres ? OpenPostgresStore(target) : OpenSqliteStore(target.substr(7));
  };

  SystemClock clock;
  const int64_t now = clock.NowMillis();
  v1::Policy policy = collectors::DefaultPolicy();
  // A real latest attestation, as the aggregator stores it.
  v1::Attestation att;
  att.set_device_id("dev-00000000");
  att.set_sequence(1);
  att.mutable_platform()->set_os("linux");
  att.mutable_platform()->set_os_name("Debian GNU/Linux 12 (bookworm)");
  for (const char* id :
       {collectors::kScreenLock, collectors::kPasswordPolicy, collectors::kUsbStorage}) {
    auto* c = att.add_checks();
    c->set_check(id);
    c->set_status(v1::PASS);
    c->set_reason(std::string(120, 'r'));
    c->mutable_evidence()->mutable_usb_storage()->add_warnings(std::string(400, 'w'));
  }
  std::string latest = att.SerializeAsString();
  std::string platform = att.platform().SerializeAsString();

  {
    auto schema = open();  // creates the schema
    if (!schema.ok()) {
      std::fprintf(stderr, "fleet_bench: %s\n", schema.status().ToString().c_str());
      return 1;
    }
  }
  auto t0 = Steady::now();
  vigil::Status filled =
      postgres ? FillPostgres(target, n, now, platform, collectors::PolicyVersion(policy), latest)
               : FillSqlite(target.substr(7), n, now, platform, collectors::PolicyVersion(policy),
                            latest);
  if (!filled.ok()) {
    std::fprintf(stderr, "fleet_bench: fill: %s\n", filled.ToString().c_str());
    return 1;
  }
  std::printf("%s: %lld devices added in %.1f s\n", postgres ? "PostgreSQL" : "SQLite",
              static_cast<long long>(n), std::chrono::duration<double>(Steady::now() - t0).count());

  auto store = open();
  if (!store.ok()) return 1;
  Counters counters;
  PolicyState policy_state(UnstoredSnapshot(policy));
  Fleet fleet(**store, clock, policy_state, counters);
  const int64_t stale_before = now - int64_t{policy.checkin_window_seconds()} * 1000;
  const int runs = 15;

  uint64_t total = 0, non_compliant = 0;
  double counts_ms = MedianMs(runs, [&] {
    auto c = (*store)->CountByStatus(stale_before);
    if (!c.ok()) std::abort();
    total = 0;
    for (const auto& [st, k] : *c) {
      total += k;
      if (st == v1::NON_COMPLIANT) non_compliant = k;
    }
  });
  std::printf(
      "counts by status (summary): %.2f ms median of %d (%llu devices, %llu NON_COMPLIANT)\n",
      counts_ms, runs, static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(non_compliant));
  for (uint32_t limit : {100u, 1000u}) {
    size_t got = 0;
    double ms = MedianMs(runs, [&] {
      v1::ListDevicesRequest req;
      req.set_status(v1::NON_COMPLIANT);
      req.set_limit(limit);
      auto r = fleet.ListDevices(req);
      if (!r.ok()) std::abort();
      got = static_cast<size_t>(r->devices_size());
    });
    std::printf("first page of NON_COMPLIANT (%u per page, got %zu): %.2f ms median of %d\n", limit,
                got, ms, runs);
  }
  {
    size_t got = 0;
    double ms = MedianMs(runs, [&] {
      v1::ListDevicesRequest req;
      req.set_status(v1::STALE);
      auto r = fleet.ListDevices(req);
      if (!r.ok()) std::abort();
      got = static_cast<size_t>(r->devices_size());
    });
    std::printf("first page of STALE (1000 per page, got %zu): %.2f ms median of %d\n", got, ms,
                runs);
  }
  {
    double ms = MedianMs(runs, [&] {
      v1::SummaryRequest req;
      if (!fleet.Summary(req).ok()) std::abort();
    });
    std::printf("Fleet::Summary (the RPC's work): %.2f ms median of %d\n", ms, runs);
  }
  {
    // A new policy: the server re-judges every device's stored evidence at start-up, a page of
    // 1000 devices per transaction.
    v1::Policy stricter = policy;
    stricter.set_version(collectors::PolicyVersion(policy) + "-bench");
    Credentials credentials(**store, clock);
    AggregatorOptions opts;
    Aggregator aggregator(**store, clock, credentials, counters, stricter, opts);
    auto started = Steady::now();
    if (Status s = aggregator.ReevaluateFleet(); !s.ok()) {
      std::fprintf(stderr, "fleet_bench: re-evaluation: %s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("re-evaluating every reporting device under a new policy: %.1f s\n",
                std::chrono::duration<double>(Steady::now() - started).count());
  }
  std::printf("bench process max RSS: %.1f MiB\n", static_cast<double>(MaxRssKb()) / 1024);
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}

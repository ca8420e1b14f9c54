// The Store contract, backend by backend: every case runs on the embedded SQLite store and, when
// VIGIL_TEST_POSTGRES_URL names a PostgreSQL database, on the PostgreSQL store too (each case in
// a fresh schema). With VIGIL_REQUIRE_POSTGRES=1 (CI) a missing URL fails instead of skipping,
// so the PostgreSQL half can never silently not run.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "common/temp_dir.h"
#include "proto/audit_chain.h"
#include "server/jobs.h"
#include "server/postgres_store.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;

struct Backend {
  std::string name;
  // Opens a store; calling it again opens another connection to the SAME database (a replica).
  std::function<std::unique_ptr<Store>()> open;
  // Runs SQL on the same database around the store (to make it look like an earlier release's).
  std::function<void(const std::string&)> exec;
  // The SQLite database's directory, removed with the Backend (after the case's stores closed).
  std::unique_ptr<TempDir> dir;
};

std::string RandomSuffix() {
  static std::mt19937_64 rng(std::random_device{}());
  return std::to_string(rng() % 1000000000);
}

// A fresh schema in the test database, and a URL whose connections use it.
std::string FreshPostgresSchema(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  REQUIRE_MESSAGE(PQstatus(conn) == CONNECTION_OK, "PostgreSQL: ", PQerrorMessage(conn));
  std::string schema = "vigil_test_" + RandomSuffix();
  PGresult* r = PQexec(conn, ("CREATE SCHEMA " + schema).c_str());
  REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(conn);
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
         schema;
}

std::vector<Backend> Backends() {
  std::vector<Backend> out;
  auto dir = std::make_unique<TempDir>("vigil-store");
  std::string path = *dir / "vigil.db";
  out.push_back({"sqlite",
                 [path] {
                   auto s = OpenSqliteStore(path);
                   REQUIRE(s.ok());
                   return std::move(s).value();
                 },
                 [path](const std::string& sql) {
                   sqlite3* db = nullptr;
                   REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
                   sqlite3_busy_timeout(db, 5000);
                   char* msg = nullptr;
                   int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
                   std::string m = msg ? msg : "";
                   sqlite3_free(msg);
                   sqlite3_close(db);
                   REQUIRE_MESSAGE(rc == SQLITE_OK, m);
                 },
                 std::move(dir)});
  const char* url = std::getenv("VIGIL_TEST_POSTGRES_URL");
  const char* required = std::getenv("VIGIL_REQUIRE_POSTGRES");
  if (url == nullptr || *url == '\0') {
    if (required != nullptr && std::string(required) == "1") {
      FAIL(
          "VIGIL_REQUIRE_POSTGRES=1 but VIGIL_TEST_POSTGRES_URL is not set: the PostgreSQL store "
          "suite cannot run (scripts/pg.sh start DIR PORT prints a URL)");
    }
    MESSAGE("PostgreSQL store suite not run: VIGIL_TEST_POSTGRES_URL is not set");
    return out;
  }
  std::string schema_url = FreshPostgresSchema(url);
  out.push_back({"postgres",
                 [schema_url] {
                   auto s = OpenPostgresStore(schema_url);
                   REQUIRE_MESSAGE(s.ok(), s.status().ToString());
                   return std::move(s).value();
                 },
                 [schema_url](const std::string& sql) {
                   PGconn* conn = PQconnectdb(schema_url.c_str());
                   REQUIRE_MESSAGE(PQstatus(conn) == CONNECTION_OK, PQerrorMessage(conn));
                   PGresult* r = PQexec(conn, sql.c_str());
                   bool ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
                             PQresultStatus(r) == PGRES_TUPLES_OK;
                   std::string m = PQresultErrorMessage(r);
                   PQclear(r);
                   PQfinish(conn);
                   REQUIRE_MESSAGE(ok, m);
                 },
                 nullptr});  // nothing on disk here
  return out;
}

AuditRecord Audit(const std::string& action) { return {kNow, "test", action, "t", "", true}; }

DeviceRecord Device(const std::string& id, char key_byte) {
  DeviceRecord d;
  d.id = id;
  d.public_key = std::string(32, key_byte);
  d.key_id = std::string(31, key_byte) + "k";
  d.hostname = "host-" + id;
  d.platform.set_os("linux");
  d.enrolled_at_ms = kNow;
  d.status = v1::UNKNOWN;
  return d;
}

AcceptedAttestation Accepted(DeviceRecord d, uint64_t seq, v1::DeviceStatus status,
                             std::vector<std::string> failing = {}, int64_t at = kNow) {
  AcceptedAttestation a;
  a.device_id = d.id;
  a.sequence = seq;
  a.digest = std::string(32, static_cast<char>('0' + seq % 10));
  a.issued_at_ms = at;
  a.received_at_ms = at;
  a.envelope.set_attestation("bytes-" + std::to_string(seq));
  d.last_seen_ms = at;
  d.last_sequence = seq;
  d.status = status;
  d.failing_checks = std::move(failing);
  d.status_reason = status == v1::COMPLIANT ? "all checks pass" : "failing";
  d.latest_attestation = "latest-" + std::to_string(seq);
  a.device_after = d;
  return a;
}

#define FOR_EACH_BACKEND(b) for (const Backend& b : Backends())

TEST_CASE(
    "store: devices are unique by id and key; enrollment leaves an event and an audit entry") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    REQUIRE(s->InsertDevice(Device("dev-a", 'a'), Audit("device.enroll")).ok());
    CHECK(s->InsertDevice(Device("dev-a", 'b'), Audit("x")).code() == Status::Code::kAlreadyExists);
    CHECK(s->InsertDevice(Device("dev-b", 'a'), Audit("x")).code() == Status::Code::kAlreadyExists);
    auto by_key = s->FindDeviceByKeyId(Device("dev-a", 'a').key_id);
    REQUIRE(by_key.ok());
    REQUIRE(by_key->has_value());
    CHECK((*by_key)->id == "dev-a");
    CHECK((*by_key)->public_key == std::string(32, 'a'));
    CHECK((*by_key)->platform.os() == "linux");
    CHECK(!s->GetDevice("dev-nope")->has_value());
    CHECK(s->Events("dev-a", 10)->at(0).kind == "enrolled");
    auto audit = s->ListAudit(0, 100);
    REQUIRE(audit.ok());
    REQUIRE(audit->size() == 1);  // the failed inserts left nothing
    CHECK(audit->at(0).action() == "device.enroll");
  }
}

TEST_CASE("store: attestations are stored once; history-only ones move only the sequence") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord d = Device("dev-a", 'a');
    REQUIRE(s->InsertDevice(d, Audit("e")).ok());
    REQUIRE(s->CommitAttestation(Accepted(d, 1, v1::COMPLIANT)).ok());
    CHECK(s->CommitAttestation(Accepted(d, 1, v1::COMPLIANT)).code() ==
          Status::Code::kAlreadyExists);
    CHECK(s->AttestationDigest("dev-a", 1)->value() == std::string(32, '1'));
    CHECK(!s->AttestationDigest("dev-a", 2)->has_value());
    AcceptedAttestation old = Accepted(d, 2, v1::NON_COMPLIANT, {"usb_storage"});
    old.live = false;
    REQUIRE(s->CommitAttestation(old).ok());
    DeviceRecord now = s->GetDevice("dev-a")->value();
    CHECK(now.last_sequence == 2);
    CHECK(now.status == v1::COMPLIANT);
    CHECK(now.latest_attestation == "latest-1");
    // The ingest path's read and listings leave the latest evidence (kilobytes) out.
    CHECK(s->FindDeviceByKeyId(d.key_id)->value().latest_attestation.empty());
    CHECK(s->ListDevices(DeviceFilter{})->at(0).latest_attestation.empty());
    auto h = s->History("dev-a", 2);
    REQUIRE(h->size() == 2);
    CHECK(h->at(0).sequence == 2);  // newest first
    CHECK(h->at(0).failing_checks == std::vector<std::string>{"usb_storage"});
    CHECK(s->History("dev-a", 1)->size() == 1);
    // Another writer (a replica) committed a newer sequence in between: the older one is kept
    // as history and does not roll the device's state back.
    REQUIRE(s->CommitAttestation(Accepted(d, 4, v1::NON_COMPLIANT, {"usb_storage"})).ok());
    REQUIRE(s->CommitAttestation(Accepted(d, 3, v1::COMPLIANT)).ok());
    CHECK(s->GetDevice("dev-a")->value().last_sequence == 4);
    CHECK(s->GetDevice("dev-a")->value().status == v1::NON_COMPLIANT);
    CHECK(s->AttestationDigest("dev-a", 3)->has_value());
    d.status = v1::NON_COMPLIANT;
    d.failing_checks = {"screen_lock"};
    d.policy_version = "v2";
    d.last_sequence = 4;
    REQUIRE(s->UpdateVerdicts({d}).ok());
    CHECK(s->GetDevice("dev-a")->value().policy_version == "v2");
    // Judged from sequence 4, but 5 arrived meanwhile: its verdict stands.
    REQUIRE(s->CommitAttestation(Accepted(d, 5, v1::COMPLIANT)).ok());
    d.policy_version = "v3";
    REQUIRE(s->UpdateVerdicts({d}).ok());
    CHECK(s->GetDevice("dev-a")->value().policy_version != "v3");
    CHECK(s->GetDevice("dev-a")->value().status == v1::COMPLIANT);
  }
}

TEST_CASE("store: a group commit is all or none, in order, across pipeline chunks") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord a = Device("dev-a", 'a'), c = Device("dev-c", 'c'), r = Device("dev-r", 'r');
    for (const DeviceRecord* d : {&a, &c, &r}) REQUIRE(s->InsertDevice(*d, Audit("e")).ok());
    REQUIRE(s->RevokeDevice("dev-r", "lost", kNow, Audit("r")).ok());
    // Many devices, so the group spans more than one pipeline chunk.
    std::vector<DeviceRecord> many;
    for (int i = 0; i < 150; ++i) {
      many.push_back(Device("dev-m" + std::to_string(1000 + i), static_cast<char>(i)));
      many.back().key_id = "key-m" + std::to_string(1000 + i);
      REQUIRE(s->InsertDevice(many.back(), Audit("e")).ok());
    }
    std::vector<AcceptedAttestation> group = {Accepted(a, 1, v1::COMPLIANT),
                                              Accepted(a, 2, v1::NON_COMPLIANT, {"usb_storage"})};
    AcceptedAttestation history = Accepted(c, 5, v1::NON_COMPLIANT);
    history.live = false;
    group.push_back(history);
    for (const auto& d : many) group.push_back(Accepted(d, 1, v1::COMPLIANT));
    auto pointers = [](const std::vector<AcceptedAttestation>& g) {
      std::vector<const AcceptedAttestation*> out;
      for (const auto& x : g) out.push_back(&x);
      return out;
    };
    REQUIRE(s->CommitAttestations(pointers(group)).ok());
    DeviceRecord now_a = s->GetDevice("dev-a")->value();
    CHECK(now_a.last_sequence == 2);  // the later one in the group wins
    CHECK(now_a.status == v1::NON_COMPLIANT);
    DeviceRecord now_c = s->GetDevice("dev-c")->value();
    CHECK(now_c.last_sequence == 5);  // history only: the sequence, not the state
    CHECK(now_c.last_seen_ms == 0);
    CHECK(s->GetDevice("dev-m1149")->value().last_sequence == 1);
    CHECK(s->History("dev-m1149", 10)->size() == 1);

    // A duplicate anywhere fails the whole group: nothing of it is stored.
    std::vector<AcceptedAttestation> dup = {Accepted(many[0], 2, v1::COMPLIANT),
                                            Accepted(a, 2, v1::NON_COMPLIANT, {"usb_storage"})};
    CHECK(s->CommitAttestations(pointers(dup)).code() == Status::Code::kAlreadyExists);
    CHECK(s->GetDevice("dev-m1000")->value().last_sequence == 1);
    // So does a revoked device.
    std::vector<AcceptedAttestation> revoked = {Accepted(many[1], 2, v1::COMPLIANT),
                                                Accepted(r, 1, v1::COMPLIANT)};
    CHECK(s->CommitAttestations(pointers(revoked)).code() == Status::Code::kFailedPrecondition);
    CHECK(s->GetDevice("dev-m1001")->value().last_sequence == 1);
    CHECK(s->History("dev-r", 10)->empty());
    // And the store is usable afterwards.
    std::vector<AcceptedAttestation> after = {Accepted(many[1], 2, v1::COMPLIANT)};
    CHECK(s->CommitAttestations(pointers(after)).ok());
    CHECK(s->GetDevice("dev-m1001")->value().last_sequence == 2);
    // Overtaken inside a group (a replica committed a newer sequence first): kept as history,
    // the newer state stays.
    auto replica = b.open();
    REQUIRE(replica->CommitAttestation(Accepted(a, 9, v1::COMPLIANT)).ok());
    std::vector<AcceptedAttestation> late = {Accepted(many[2], 2, v1::COMPLIANT),
                                             Accepted(a, 8, v1::NON_COMPLIANT, {"usb_storage"})};
    CHECK(s->CommitAttestations(pointers(late)).ok());
    now_a = s->GetDevice("dev-a")->value();
    CHECK(now_a.last_sequence == 9);
    CHECK(now_a.status == v1::COMPLIANT);
    CHECK(s->History("dev-a", 10)->size() == 4);  // 1, 2, 8 and 9
  }
}

TEST_CASE("store: revocation wins over a commit and over approval; tamper flags once") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord d = Device("dev-a", 'a');
    d.pending = true;
    REQUIRE(s->InsertDevice(d, Audit("e")).ok());
    CHECK(s->ApproveDevice("dev-nope", Audit("a")).code() == Status::Code::kNotFound);
    REQUIRE(s->RevokeDevice("dev-a", "stolen", kNow, Audit("device.revoke")).ok());
    CHECK(s->CommitAttestation(Accepted(d, 1, v1::COMPLIANT)).code() ==
          Status::Code::kFailedPrecondition);
    CHECK(s->History("dev-a", 10)->empty());
    CHECK(s->ApproveDevice("dev-a", Audit("a")).code() == Status::Code::kFailedPrecondition);
    CHECK(s->RevokeDevice("dev-nope", "x", kNow, Audit("r")).code() == Status::Code::kNotFound);
    DeviceRecord r = s->GetDevice("dev-a")->value();
    CHECK(r.revoked_at_ms == kNow);
    CHECK(r.revoke_reason == "stolen");

    REQUIRE(s->InsertDevice(Device("dev-b", 'b'), Audit("e")).ok());
    size_t rows = s->ListAudit(0, 1000)->size();
    for (int i = 0; i < 3; ++i) {
      REQUIRE(s->MarkTampered("dev-b", "reason " + std::to_string(i), kNow, Audit("t")).ok());
    }
    CHECK(s->ListAudit(0, 1000)->size() == rows + 1);
    CHECK(s->GetDevice("dev-b")->value().tamper_reason == "reason 0");
  }
}

TEST_CASE("store: effective-status filters, counts, failing check, os and paging") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    const int64_t stale_before = kNow - 1000;
    auto add = [&](const std::string& id, char k) {
      DeviceRecord d = Device(id, k);
      REQUIRE(s->InsertDevice(d, Audit("e")).ok());
      return d;
    };
    REQUIRE(s->CommitAttestation(Accepted(add("dev-1", '1'), 1, v1::COMPLIANT)).ok());
    REQUIRE(s->CommitAttestation(
                 Accepted(add("dev-2", '2'), 1, v1::NON_COMPLIANT, {"usb_storage", "screen_lock"}))
                .ok());
    REQUIRE(s->CommitAttestation(Accepted(add("dev-3", '3'), 1, v1::COMPLIANT, {}, kNow - 5000))
                .ok());  // stale
    add("dev-4", '4');   // unknown
    DeviceRecord p = Device("dev-5", '5');
    p.pending = true;
    REQUIRE(s->InsertDevice(p, Audit("e")).ok());
    REQUIRE(s->CommitAttestation(Accepted(add("dev-6", '6'), 1, v1::COMPLIANT)).ok());
    REQUIRE(s->MarkTampered("dev-6", "forged", kNow, Audit("t")).ok());
    add("dev-7", '7');
    REQUIRE(s->RevokeDevice("dev-7", "lost", kNow, Audit("r")).ok());

    auto ids = [&](DeviceFilter f) {
      f.stale_before_ms = stale_before;
      auto rows = s->ListDevices(f);
      REQUIRE(rows.ok());
      std::vector<std::string> out;
      for (const auto& d : *rows) out.push_back(d.id);
      return out;
    };
    auto with = [](v1::DeviceStatus st) {
      DeviceFilter f;
      f.status = st;
      return f;
    };
    CHECK(ids(with(v1::COMPLIANT)) == std::vector<std::string>{"dev-1"});
    CHECK(ids(with(v1::NON_COMPLIANT)) == std::vector<std::string>{"dev-2"});
    CHECK(ids(with(v1::STALE)) == std::vector<std::string>{"dev-3"});
    CHECK(ids(with(v1::UNKNOWN)) == std::vector<std::string>{"dev-4"});
    CHECK(ids(with(v1::PENDING)) == std::vector<std::string>{"dev-5"});
    CHECK(ids(with(v1::TAMPERED)) == std::vector<std::string>{"dev-6"});
    CHECK(ids(with(v1::REVOKED)) == std::vector<std::string>{"dev-7"});
    DeviceFilter check;
    check.failing_check = "usb_storage";
    CHECK(ids(check) == std::vector<std::string>{"dev-2"});
    check.failing_check = "usb";
    CHECK(ids(check).empty());  // whole ids only
    DeviceFilter os;
    os.os = "windows";
    CHECK(ids(os).empty());
    DeviceFilter page;
    page.limit = 3;
    CHECK(ids(page) == std::vector<std::string>{"dev-1", "dev-2", "dev-3"});
    page.after_id = "dev-3";
    CHECK(ids(page) == std::vector<std::string>{"dev-4", "dev-5", "dev-6"});

    auto counts = s->CountByStatus(stale_before);
    REQUIRE(counts.ok());
    std::map<v1::DeviceStatus, uint64_t> by;
    for (const auto& [st, n] : *counts) by[st] += n;
    CHECK(by[v1::COMPLIANT] == 1);
    CHECK(by[v1::NON_COMPLIANT] == 1);
    CHECK(by[v1::STALE] == 1);
    CHECK(by[v1::UNKNOWN] == 1);
    CHECK(by[v1::PENDING] == 1);
    CHECK(by[v1::TAMPERED] == 1);
    CHECK(by[v1::REVOKED] == 1);
  }
}

// Counts by effective status from every row, the slow way the counters replace.
std::map<v1::DeviceStatus, uint64_t> ScanCounts(Store& s, int64_t stale_before) {
  std::map<v1::DeviceStatus, uint64_t> by;
  DeviceFilter all;
  all.limit = 100000;
  auto rows = s.ListDevices(all);
  REQUIRE(rows.ok());
  for (const DeviceRecord& d : *rows) {
    v1::DeviceStatus st = d.revoked_at_ms                 ? v1::REVOKED
                          : d.tampered                    ? v1::TAMPERED
                          : d.pending                     ? v1::PENDING
                          : d.last_seen_ms == 0           ? v1::UNKNOWN
                          : d.last_seen_ms < stale_before ? v1::STALE
                                                          : d.status;
    ++by[st];
  }
  return by;
}

std::map<v1::DeviceStatus, uint64_t> Counted(Store& s, int64_t stale_before) {
  std::map<v1::DeviceStatus, uint64_t> by;
  auto counts = s.CountByStatus(stale_before);
  REQUIRE(counts.ok());
  for (const auto& [st, n] : *counts) by[st] += n;
  return by;
}

TEST_CASE("store: status counters stay equal to a full scan through every kind of change") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    auto replica = b.open();
    std::mt19937 rng(7);
    std::vector<DeviceRecord> devices;
    std::map<std::string, uint64_t> seq;
    const int64_t stale_before = kNow - 1000;
    for (int step = 0; step < 300; ++step) {
      CAPTURE(step);
      Store& on = step % 2 ? *s : *replica;  // two replicas change the same fleet
      int what = static_cast<int>(rng() % 10);
      if (devices.empty() || what == 0) {
        DeviceRecord d = Device("dev-" + std::to_string(devices.size()),
                                static_cast<char>('A' + devices.size()));
        d.pending = rng() % 4 == 0;
        REQUIRE(on.InsertDevice(d, Audit("e")).ok());
        devices.push_back(d);
        continue;
      }
      DeviceRecord& d = devices[rng() % devices.size()];
      if (what <= 5) {
        v1::DeviceStatus verdict = rng() % 3 ? v1::COMPLIANT : v1::NON_COMPLIANT;
        AcceptedAttestation a =
            Accepted(d, ++seq[d.id], verdict, {}, rng() % 4 ? kNow : kNow - 5000);  // some stale
        a.live = rng() % 8 != 0;  // and some history-only
        on.CommitAttestation(a);  // refused for revoked devices, like the aggregator's
      } else if (what == 6) {
        on.ApproveDevice(d.id, Audit("a"));
      } else if (what == 7) {
        on.MarkTampered(d.id, "forged", kNow, Audit("t"));
      } else if (what == 8) {
        on.RevokeDevice(d.id, "lost", kNow, Audit("r"));
      } else {
        auto now = on.GetDevice(d.id).value().value();
        now.status = now.status == v1::COMPLIANT ? v1::NON_COMPLIANT : v1::COMPLIANT;
        REQUIRE(on.UpdateVerdicts({now}).ok());  // re-evaluation under another policy
      }
      REQUIRE(Counted(*s, stale_before) == ScanCounts(*s, stale_before));
    }
    // Every bucket was exercised.
    auto final_counts = Counted(*s, stale_before);
    for (v1::DeviceStatus st : {v1::COMPLIANT, v1::NON_COMPLIANT, v1::STALE, v1::UNKNOWN,
                                v1::PENDING, v1::TAMPERED, v1::REVOKED}) {
      CHECK_MESSAGE(final_counts[st] > 0, v1::DeviceStatus_Name(st));
    }
  }
}

TEST_CASE("store: key replacement is a compare-and-swap") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord a = Device("dev-a", 'a');
    REQUIRE(s->InsertDevice(a, Audit("e")).ok());
    REQUIRE(s->InsertDevice(Device("dev-b", 'b'), Audit("e")).ok());
    std::string new_key(32, 'n'), new_id(32, 'N');
    CHECK(s->ReplaceDeviceKey("dev-a", "wrong", new_key, new_id, kNow, Audit("k")).code() ==
          Status::Code::kFailedPrecondition);
    CHECK(s->ReplaceDeviceKey("dev-a", a.key_id, new_key, Device("dev-b", 'b').key_id, kNow,
                              Audit("k"))
              .code() == Status::Code::kAlreadyExists);
    REQUIRE(s->ReplaceDeviceKey("dev-a", a.key_id, new_key, new_id, kNow, Audit("k")).ok());
    CHECK(s->FindDeviceByKeyId(new_id)->value().id == "dev-a");
    CHECK(!s->FindDeviceByKeyId(a.key_id)->has_value());
  }
}

TEST_CASE("store: credentials by id and name, revocation once") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    CredentialRecord c;
    c.kind = CredentialKind::kToken;
    c.id = "0123456789ab";
    c.name = "alice";
    c.role = 2;
    c.hash = std::string(32, 'h');
    c.created_at_ms = kNow;
    c.expires_at_ms = kNow + 1000;
    REQUIRE(s->InsertCredential(c, Audit("token.create")).ok());
    CredentialRecord same_name = c;
    same_name.id = "ffffffffffff";
    CHECK(s->InsertCredential(same_name, Audit("x")).code() == Status::Code::kAlreadyExists);
    CredentialRecord secret = c;
    secret.kind = CredentialKind::kEnrollSecret;  // names are unique per kind only
    REQUIRE(s->InsertCredential(secret, Audit("enroll_secret.create")).ok());
    auto found = s->FindCredential(CredentialKind::kToken, c.id);
    REQUIRE(found->has_value());
    CHECK((*found)->hash == c.hash);
    CHECK((*found)->role == 2);
    CHECK((*found)->expires_at_ms == kNow + 1000);
    CHECK(!s->FindCredential(CredentialKind::kToken, "nope")->has_value());
    CHECK(s->ListCredentials(CredentialKind::kToken)->size() == 1);
    REQUIRE(s->RevokeCredential(CredentialKind::kToken, "alice", kNow, Audit("token.revoke")).ok());
    CHECK(s->RevokeCredential(CredentialKind::kToken, c.id, kNow, Audit("x")).code() ==
          Status::Code::kNotFound);
    CHECK(s->FindCredential(CredentialKind::kToken, c.id)->value().revoked_at_ms == kNow);
    CHECK(s->FindCredential(CredentialKind::kEnrollSecret, c.id)->value().revoked_at_ms == 0);
  }
}

TEST_CASE("store: two replicas appending at once keep one audit chain") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto first = b.open();
    auto second = b.open();
    std::vector<std::thread> writers;
    for (Store* s : {first.get(), second.get()}) {
      for (int t = 0; t < 2; ++t) {
        writers.emplace_back([s] {
          for (int i = 0; i < 25; ++i) REQUIRE(s->AppendAudit(Audit("auth.failed")).ok());
        });
      }
    }
    for (auto& w : writers) w.join();
    auto entries = first->ListAudit(0, 1000);
    REQUIRE(entries.ok());
    CHECK(entries->size() == 100);
    auto chain = audit::VerifyChain(*entries, std::string(audit::kHashSize, '\0'));
    CHECK_MESSAGE(chain.ok(), chain.status().ToString());
    CHECK(second->ListAudit(99, 10)->size() == 1);  // paging
  }
}

TEST_CASE(
    "store: background jobs run once per period across replicas; retention keeps the latest") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto first = b.open();
    auto second = b.open();
    const int64_t hour = 3600 * 1000;
    // Two replicas race for the same period: exactly one wins.
    std::atomic<int> wins{0};
    std::vector<std::thread> racers;
    for (Store* s : {first.get(), second.get(), first.get(), second.get()}) {
      racers.emplace_back([s, &wins] {
        auto c = s->ClaimJob("history_retention", kNow, hour);
        REQUIRE(c.ok());
        if (*c) ++wins;
      });
    }
    for (auto& r : racers) r.join();
    CHECK(wins == 1);
    CHECK(!second->ClaimJob("history_retention", kNow + hour - 1, hour).value());
    CHECK(second->ClaimJob("history_retention", kNow + hour, hour).value());
    CHECK(first->ClaimJob("other_job", kNow, hour).value());  // jobs are independent

    DeviceRecord d = Device("dev-a", 'a');
    REQUIRE(first->InsertDevice(d, Audit("e")).ok());
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      REQUIRE(first->CommitAttestation(Accepted(d, seq, v1::COMPLIANT, {}, kNow + (seq - 1) * hour))
                  .ok());
    }
    // Older than the cutoff: 1 and 2; 3 is newer. Then even the latest survives an old cutoff.
    CHECK(first->PruneHistory(kNow + hour + 1).value() == 2);
    CHECK(first->History("dev-a", 10)->size() == 1);
    CHECK(first->PruneHistory(kNow + 10 * hour).value() == 0);
    CHECK(first->History("dev-a", 10)->at(0).sequence == 3);
    size_t audit = first->ListAudit(0, 100)->size();

    // The job itself, with the injected clock: it prunes once per period, on one replica only.
    REQUIRE(first->CommitAttestation(Accepted(d, 4, v1::COMPLIANT, {}, kNow + 3 * hour)).ok());
    FakeClock clock(kNow + 5 * hour);
    Counters counters;
    BackgroundJobs on_first(*first, clock, counters, 90 * 60 * 1000);
    BackgroundJobs on_second(*second, clock, counters, 90 * 60 * 1000);
    CHECK(on_first.RunDue() + on_second.RunDue() == 1);
    CHECK(counters.Get("history.pruned") == 1);          // sequence 3; 4 is the latest
    CHECK(on_first.RunDue() + on_second.RunDue() == 0);  // same period
    clock.Advance(BackgroundJobs::kRetentionPeriodMs);
    CHECK(on_second.RunDue() + on_first.RunDue() == 1);
    CHECK(first->ListAudit(0, 100)->size() == audit);  // the audit log is never pruned
  }
}

TEST_CASE("sqlite store: a database of the first release keeps its attestations") {
  TempDir dir("vigil-store");
  std::string path = dir / "vigil.db";
  {
    // The first release's layout: attestations keyed by (device_id, sequence), WITHOUT ROWID.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    const char* old = R"sql(
      CREATE TABLE devices(id TEXT PRIMARY KEY, key_id BLOB NOT NULL UNIQUE,
        public_key BLOB NOT NULL, hostname TEXT NOT NULL DEFAULT '', os TEXT NOT NULL DEFAULT '',
        platform BLOB, enrolled_at_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL DEFAULT 0,
        last_sequence INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL,
        status_reason TEXT NOT NULL DEFAULT '', failing_checks TEXT NOT NULL DEFAULT ',',
        tampered INTEGER NOT NULL DEFAULT 0, tamper_reason TEXT NOT NULL DEFAULT '',
        policy_version TEXT NOT NULL DEFAULT '', latest BLOB);
      CREATE TABLE attestations(device_id TEXT NOT NULL, sequence INTEGER NOT NULL,
        digest BLOB NOT NULL, issued_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL,
        status INTEGER NOT NULL, failing_checks TEXT NOT NULL, envelope BLOB NOT NULL,
        PRIMARY KEY(device_id, sequence)) WITHOUT ROWID;
      CREATE INDEX attestations_received ON attestations(received_at_ms);
      INSERT INTO devices(id, key_id, public_key, enrolled_at_ms, last_seen_ms, last_sequence,
        status) VALUES('dev-old', x'6b6b', x'6b6b', 1, 5, 7, 1);
      INSERT INTO attestations VALUES('dev-old', 7, x'0707', 5, 5, 1, ',', x'00');
    )sql";
    REQUIRE(sqlite3_exec(db, old, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = OpenSqliteStore(path);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  CHECK((*s)->AttestationDigest("dev-old", 7)->value() == "\x07\x07");
  DeviceRecord d = (*s)->GetDevice("dev-old")->value();
  REQUIRE((*s)->CommitAttestation(Accepted(d, 8, v1::COMPLIANT)).ok());
  CHECK((*s)->CommitAttestation(Accepted(d, 8, v1::COMPLIANT)).code() ==
        Status::Code::kAlreadyExists);  // (device, sequence) is still unique
  auto h = (*s)->History("dev-old", 10);
  REQUIRE(h->size() == 2);
  CHECK(h->at(1).sequence == 7);
  s = Status::Internal("closed");
  // Opened again: nothing to move, nothing lost.
  auto again = OpenSqliteStore(path);
  REQUIRE(again.ok());
  CHECK((*again)->History("dev-old", 10)->size() == 2);
  // Counters created on the upgrade started from the devices already there.
  auto counts = (*again)->CountByStatus(0).value();
  REQUIRE(counts.size() == 1);
  CHECK(counts[0] == std::pair<v1::DeviceStatus, uint64_t>{v1::COMPLIANT, 1});
}

TEST_CASE("store: status transitions raise alerts in the changing transaction, once each") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord d = Device("dev-a", 'a');
    REQUIRE(s->InsertDevice(d, Audit("e")).ok());
    auto kinds = [&] {
      std::vector<std::string> out;
      auto alerts = s->ListAlerts(0, 100, "");
      REQUIRE(alerts.ok());
      for (const auto& a : *alerts) out.push_back(a.kind);
      return out;
    };
    REQUIRE(s->CommitAttestation(Accepted(d, 1, v1::COMPLIANT)).ok());
    CHECK(kinds().empty());  // a first verdict of COMPLIANT is not news
    REQUIRE(
        s->CommitAttestation(Accepted(d, 2, v1::NON_COMPLIANT, {"usb_storage"}, kNow + 5)).ok());
    auto alerts = s->ListAlerts(0, 100, "").value();
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].kind == "device.non_compliant");
    CHECK(alerts[0].device_id == "dev-a");
    CHECK(alerts[0].hostname == "host-dev-a");
    CHECK(alerts[0].status == v1::NON_COMPLIANT);
    CHECK(alerts[0].previous == v1::COMPLIANT);
    CHECK(alerts[0].at_ms == kNow + 5);
    CHECK(alerts[0].failing_checks == std::vector<std::string>{"usb_storage"});
    CHECK(alerts[0].reason == "failing");
    REQUIRE(s->CommitAttestation(Accepted(d, 3, v1::NON_COMPLIANT, {"usb_storage"})).ok());
    CHECK(kinds().size() == 1);  // still non-compliant: nothing new
    REQUIRE(s->CommitAttestation(Accepted(d, 4, v1::COMPLIANT)).ok());
    CHECK(kinds() == std::vector<std::string>{"device.non_compliant", "device.resolved"});
    AcceptedAttestation old = Accepted(d, 5, v1::NON_COMPLIANT, {"usb_storage"});
    old.live = false;
    REQUIRE(s->CommitAttestation(old).ok());
    CHECK(kinds().size() == 2);  // history moves no status

    // Silence: announced STALE once by the sweep; a re-evaluation meanwhile changes nothing.
    CHECK(s->RaiseStaleAlerts(kNow + 1000, kNow + 2000).value() == 1);
    CHECK(s->RaiseStaleAlerts(kNow + 1000, kNow + 3000).value() == 0);
    alerts = s->ListAlerts(2, 100, "").value();
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].kind == "device.stale");
    CHECK(alerts[0].previous == v1::COMPLIANT);
    CHECK(alerts[0].at_ms == kNow + 2000);
    DeviceRecord judged = s->GetDevice("dev-a")->value();
    judged.status = v1::NON_COMPLIANT;
    REQUIRE(s->UpdateVerdicts({judged}).ok());
    CHECK(kinds().size() == 3);
    // It reports again: back from STALE, resolved.
    REQUIRE(s->CommitAttestation(Accepted(d, 6, v1::COMPLIANT, {}, kNow + 4000)).ok());
    alerts = s->ListAlerts(3, 100, "").value();
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].kind == "device.resolved");
    CHECK(alerts[0].previous == v1::STALE);

    REQUIRE(s->MarkTampered("dev-a", "replayed sequence 3", kNow, Audit("t")).ok());
    alerts = s->ListAlerts(4, 100, "").value();
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].kind == "device.tampered");
    CHECK(alerts[0].reason == "replayed sequence 3");
    REQUIRE(s->RevokeDevice("dev-a", "stolen", kNow, Audit("r")).ok());
    CHECK(kinds().size() == 5);  // an admin's revocation is not an alert

    // A group that rolls back raises nothing.
    DeviceRecord e = Device("dev-e", 'e');
    REQUIRE(s->InsertDevice(e, Audit("e")).ok());
    AcceptedAttestation flips = Accepted(e, 1, v1::NON_COMPLIANT, {"screen_lock"});
    AcceptedAttestation revoked = Accepted(d, 7, v1::COMPLIANT);
    CHECK(!s->CommitAttestations({&flips, &revoked}).ok());
    CHECK(kinds().size() == 5);
    CHECK(s->ListAlerts(0, 100, "dev-e")->empty());
    REQUIRE(s->CommitAttestation(Accepted(e, 1, v1::NON_COMPLIANT, {"screen_lock"})).ok());
    CHECK(s->ListAlerts(0, 100, "dev-e")->size() == 1);
    CHECK(s->LastAlertId().value() == s->ListAlerts(0, 100, "").value().back().id);
  }
}

TEST_CASE("store: one replica at a time holds an alert sink; its progress is lease-guarded") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    auto replica = b.open();
    DeviceRecord d = Device("dev-a", 'a');
    REQUIRE(s->InsertDevice(d, Audit("e")).ok());
    REQUIRE(s->CommitAttestation(Accepted(d, 1, v1::NON_COMPLIANT, {"usb_storage"})).ok());
    // Idempotency keys carry the database's id: the same for every replica, another for
    // another database (a restored backup or a reinstall restarts alert ids).
    REQUIRE(s->InstanceId().ok());
    CHECK(s->InstanceId()->size() == 16);
    CHECK(replica->InstanceId().value() == s->InstanceId().value());
    CHECK(OpenSqliteStore(":memory:").value()->InstanceId().value() != s->InstanceId().value());
    // A sink configured now starts after the existing alerts.
    auto a = s->LeaseSink("ops", "replica-a", kNow, 1000);
    REQUIRE(a.ok());
    REQUIRE(a->has_value());
    CHECK((*a)->delivered_id == s->LastAlertId().value());
    CHECK(!replica->LeaseSink("ops", "replica-b", kNow + 10, 1000).value().has_value());
    SinkCursor cur = **a;
    cur.attempts = 2;
    cur.last_error = "HTTP 503";
    REQUIRE(s->UpdateSink(cur).ok());
    SinkCursor forged = cur;
    forged.owner = "replica-b";
    CHECK(replica->UpdateSink(forged).code() == Status::Code::kFailedPrecondition);
    // The lease runs out (replica-a died): replica-b takes over with replica-a's progress, and a
    // late write of replica-a is refused.
    auto bl = replica->LeaseSink("ops", "replica-b", kNow + 1000, 1000);
    REQUIRE(bl->has_value());
    CHECK((*bl)->attempts == 2);
    CHECK((*bl)->last_error == "HTTP 503");
    CHECK(s->UpdateSink(cur).code() == Status::Code::kFailedPrecondition);
    auto sinks = s->ListSinks().value();
    REQUIRE(sinks.size() == 1);
    CHECK(sinks[0].owner == "replica-b");
    // Retention keeps what a sink in use has not delivered; a sink unused for the whole
    // period (removed from the configuration) holds nothing back.
    REQUIRE(s->CommitAttestation(Accepted(d, 2, v1::COMPLIANT)).ok());  // alert 2, undelivered
    const uint64_t first = (*bl)->delivered_id;
    REQUIRE(s->PruneHistory(kNow + 1500).ok());  // the lease runs to kNow + 2000: in use
    auto left = s->ListAlerts(0, 100, "").value();
    REQUIRE(left.size() == 1);
    CHECK(left[0].id == first + 1);
    REQUIRE(s->PruneHistory(kNow + 5000).ok());  // unused since kNow + 2000
    CHECK(s->ListAlerts(0, 100, "")->empty());
    CHECK(s->LastAlertId().value() >= first + 1);  // ids are never reused
  }
}

TEST_CASE("store: tags, history by time range, the export and enrollment-failure counts") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord d = Device("dev-a", 'a'), e = Device("dev-b", 'b');
    REQUIRE(s->InsertDevice(d, Audit("e")).ok());
    REQUIRE(s->InsertDevice(e, Audit("e")).ok());
    CHECK(s->SetDeviceTags("dev-nope", {"x"}, Audit("t")).code() == Status::Code::kNotFound);
    REQUIRE(s->SetDeviceTags("dev-a", {"laptop", "team-eng"}, Audit("device.tags")).ok());
    CHECK(s->GetDevice("dev-a")->value().tags == std::vector<std::string>{"laptop", "team-eng"});
    DeviceFilter f;
    f.tag = "team-eng";
    auto tagged = s->ListDevices(f).value();
    REQUIRE(tagged.size() == 1);
    CHECK(tagged[0].id == "dev-a");
    f.tag = "team";  // whole tags only
    CHECK(s->ListDevices(f)->empty());
    for (uint64_t seq = 1; seq <= 5; ++seq) {
      REQUIRE(s->CommitAttestation(Accepted(d, seq, v1::COMPLIANT, {}, kNow + int64_t(seq) * 100))
                  .ok());
    }
    REQUIRE(s->CommitAttestation(Accepted(e, 1, v1::COMPLIANT, {}, kNow + 50)).ok());
    DeviceFilter unseen;
    unseen.not_seen_since_ms = kNow + 100;
    auto quiet = s->ListDevices(unseen).value();
    REQUIRE(quiet.size() == 1);
    CHECK(quiet[0].id == "dev-b");
    auto h = s->HistoryRange("dev-a", kNow + 200, kNow + 500, 0, 100).value();
    REQUIRE(h.size() == 3);  // 200, 300, 400: until is exclusive
    CHECK(h[0].sequence == 4);
    CHECK(h[2].sequence == 2);
    auto page = s->HistoryRange("dev-a", 0, 0, 4, 2).value();
    REQUIRE(page.size() == 2);
    CHECK(page[0].sequence == 3);
    auto rows = s->ExportRows("", 0, kNow + 50, kNow + 400, 2).value();
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].device_id == "dev-a");
    CHECK(rows[0].sequence == 1);
    CHECK(rows[1].sequence == 2);
    CHECK(rows[0].envelope.attestation() == "bytes-1");
    rows = s->ExportRows("dev-a", 2, kNow + 50, kNow + 400, 10).value();
    REQUIRE(rows.size() == 2);  // dev-a 3, then dev-b 1
    CHECK(rows[0].sequence == 3);
    CHECK(rows[1].device_id == "dev-b");
    AuditRecord failed{
        kNow, "peer:ipv4:127.0.0.1:1", "auth.failed", "enroll.rejected.bad_secret", "x", false};
    for (int i = 0; i < 3; ++i) REQUIRE(s->AppendAudit(failed).ok());
    failed.target = "auth.rejected.bad_token";
    REQUIRE(s->AppendAudit(failed).ok());
    CHECK(s->CountAuthFailures("enroll.", kNow).value() == 3);
    CHECK(s->CountAuthFailures("enroll.", kNow + 1).value() == 0);
  }
}

v1::PolicyChange Change(const std::string& reason, v1::PolicyChangeState state = v1::PROPOSED) {
  v1::PolicyChange c;
  c.set_id(999);  // the store numbers changes itself
  c.set_kind(v1::CHANGE);
  c.set_state(state);
  c.set_reason(reason);
  c.set_proposed_by("token:alice (admin)");
  c.mutable_policy_set()->set_description("set for " + reason);
  c.set_set_version("sha256:" + reason);
  return c;
}

// The actions of the audit entries after the first `from`.
std::vector<std::string> AuditActions(Store& s, size_t from) {
  auto entries = s.ListAudit(0, 1000);
  REQUIRE(entries.ok());
  std::vector<std::string> out;
  for (size_t i = from; i < entries->size(); ++i) out.push_back(entries->at(i).action());
  return out;
}

TEST_CASE("store: policy changes are numbered, paged and updated by compare-and-swap, audited") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    auto replica = b.open();
    const size_t before = s->ListAudit(0, 1000)->size();
    auto first = s->InsertPolicyChange(Change("a"), Audit("policy.propose"));
    REQUIRE(first.ok());
    auto second = replica->InsertPolicyChange(Change("b"), Audit("policy.propose"));
    auto third = s->InsertPolicyChange(Change("c"), Audit("policy.propose"));
    REQUIRE(second.ok());
    REQUIRE(third.ok());
    CHECK(*first >= 1);
    CHECK(*second > *first);
    CHECK(*third > *second);

    auto got = replica->GetPolicyChange(*first);
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    CHECK((*got)->id() == *first);
    CHECK((*got)->state() == v1::PROPOSED);
    CHECK((*got)->kind() == v1::CHANGE);
    CHECK((*got)->reason() == "a");
    CHECK((*got)->policy_set().description() == "set for a");
    CHECK((*got)->set_version() == "sha256:a");
    CHECK(!s->GetPolicyChange(*third + 100)->has_value());

    auto page = s->ListPolicyChanges(0, 2).value();
    REQUIRE(page.size() == 2);
    CHECK(page[0].id() == *first);
    CHECK(page[1].id() == *second);
    CHECK(page[1].reason() == "b");
    page = s->ListPolicyChanges(page[1].id(), 2).value();
    REQUIRE(page.size() == 1);
    CHECK(page[0].id() == *third);
    CHECK(s->ListPolicyChanges(*third, 10)->empty());

    // PROPOSED -> APPROVED once; a second decision from PROPOSED (another approver, a rejecter)
    // finds the state moved and changes nothing.
    v1::PolicyChange approved = (*got).value();
    approved.set_state(v1::APPROVED);
    approved.set_decided_by("token:bob (approver)");
    REQUIRE(s->UpdatePolicyChange(approved, v1::PROPOSED, Audit("policy.approve")).ok());
    v1::PolicyChange rejected = (*got).value();
    rejected.set_state(v1::REJECTED);
    rejected.set_decided_by("token:carol (approver)");
    Status late = replica->UpdatePolicyChange(rejected, v1::PROPOSED, Audit("policy.reject"));
    CHECK(late.code() == Status::Code::kFailedPrecondition);
    CHECK(late.message().find("APPROVED") != std::string::npos);
    v1::PolicyChange now = s->GetPolicyChange(*first)->value();
    CHECK(now.state() == v1::APPROVED);
    CHECK(now.decided_by() == "token:bob (approver)");
    v1::PolicyChange missing = approved;
    missing.set_id(*third + 100);
    CHECK(s->UpdatePolicyChange(missing, v1::PROPOSED, Audit("x")).code() ==
          Status::Code::kNotFound);
    // Only what succeeded is in the audit log.
    CHECK(AuditActions(*s, before) == std::vector<std::string>{"policy.propose", "policy.propose",
                                                               "policy.propose", "policy.approve"});
  }
}

TEST_CASE("store: a policy version applies only as the next number, with its change, or not") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    auto replica = b.open();
    CHECK(!s->CurrentPolicyVersion()->has_value());
    CHECK(!s->GetPolicyVersion(1)->has_value());
    const uint64_t id = s->InsertPolicyChange(Change("a", v1::APPROVED), Audit("p")).value();
    const uint64_t other = s->InsertPolicyChange(Change("b", v1::APPROVED), Audit("p")).value();
    const size_t before = s->ListAudit(0, 1000)->size();

    auto version = [&](uint64_t number, uint64_t change_id, const std::string& description) {
      PolicyVersionRecord v;
      v.number = number;
      v.change_id = change_id;
      v.set_version = "sha256:" + description;
      v.set.set_description(description);
      v.set.mutable_default_policy()->set_checkin_window_seconds(600);
      v1::PolicyOverride* o = v.set.add_overrides();
      o->set_name("laptops");
      o->set_tag("laptop");
      (*o->mutable_policy()->mutable_fields())["checkinWindowSeconds"].set_number_value(120);
      v.applied_at_ms = kNow + static_cast<int64_t>(number);
      v.applied_by = "token:alice (admin)";
      return v;
    };
    auto applied = [](uint64_t change_id, uint64_t number) {
      v1::PolicyChange c = Change("a", v1::APPLIED);
      c.set_id(change_id);
      c.set_version(number);
      c.set_applied_by("token:alice (admin)");
      return c;
    };

    // Not the next number (0 is none, 2 skips 1): refused, nothing changes.
    for (uint64_t wrong : {0, 2}) {
      CAPTURE(wrong);
      CHECK(s->ApplyPolicyVersion(version(wrong, id, "x"), applied(id, wrong), v1::APPROVED,
                                  Audit("policy.apply"))
                .code() == Status::Code::kFailedPrecondition);
    }
    CHECK(s->GetPolicyChange(id)->value().state() == v1::APPROVED);
    CHECK(!s->CurrentPolicyVersion()->has_value());
    CHECK(!s->GetPolicyVersion(2)->has_value());
    CHECK(AuditActions(*s, before).empty());

    REQUIRE(s->ApplyPolicyVersion(version(1, id, "first"), applied(id, 1), v1::APPROVED,
                                  Audit("policy.apply"))
                .ok());
    v1::PolicyChange change = s->GetPolicyChange(id)->value();
    CHECK(change.state() == v1::APPLIED);
    CHECK(change.version() == 1);
    auto current = replica->CurrentPolicyVersion();
    REQUIRE(current.ok());
    REQUIRE(current->has_value());
    const PolicyVersionRecord& first = **current;
    CHECK(first.number == 1);
    CHECK(first.change_id == id);
    CHECK(first.set_version == "sha256:first");
    CHECK(first.applied_at_ms == kNow + 1);
    CHECK(first.applied_by == "token:alice (admin)");
    CHECK(first.set.description() == "first");
    CHECK(first.set.default_policy().checkin_window_seconds() == 600);
    REQUIRE(first.set.overrides_size() == 1);
    CHECK(first.set.overrides(0).tag() == "laptop");
    CHECK(first.set.overrides(0).policy().fields().at("checkinWindowSeconds").number_value() ==
          120);
    CHECK(AuditActions(*s, before) == std::vector<std::string>{"policy.apply"});

    // Version 1 again (another replica applied it meanwhile): refused, the other change stays.
    CHECK(replica
              ->ApplyPolicyVersion(version(1, other, "again"), applied(other, 1), v1::APPROVED,
                                   Audit("policy.apply"))
              .code() == Status::Code::kFailedPrecondition);
    CHECK(s->GetPolicyChange(other)->value().state() == v1::APPROVED);
    CHECK(s->CurrentPolicyVersion()->value().set_version == "sha256:first");
    // The right number, but the change is not in the expected state, or does not exist: the
    // version is not stored either.
    CHECK(s->ApplyPolicyVersion(version(2, other, "second"), applied(other, 2), v1::PROPOSED,
                                Audit("policy.apply"))
              .code() == Status::Code::kFailedPrecondition);
    CHECK(s->ApplyPolicyVersion(version(2, other + 100, "second"), applied(other + 100, 2),
                                v1::APPROVED, Audit("policy.apply"))
              .code() == Status::Code::kNotFound);
    CHECK(!s->GetPolicyVersion(2)->has_value());
    CHECK(s->CurrentPolicyVersion()->value().number == 1);
    CHECK(AuditActions(*s, before).size() == 1);

    // Two replicas apply version 2 at once: exactly one wins.
    const uint64_t third = s->InsertPolicyChange(Change("c", v1::APPROVED), Audit("p")).value();
    std::atomic<int> wins{0}, refused{0};
    std::vector<std::thread> racers;
    for (auto [store, change_id] : {std::pair{s.get(), other}, std::pair{replica.get(), third}}) {
      racers.emplace_back([&, store = store, change_id = change_id] {
        Status st =
            store->ApplyPolicyVersion(version(2, change_id, std::to_string(change_id)),
                                      applied(change_id, 2), v1::APPROVED, Audit("policy.apply"));
        if (st.ok()) ++wins;
        if (st.code() == Status::Code::kFailedPrecondition) ++refused;
      });
    }
    for (auto& r : racers) r.join();
    CHECK(wins == 1);
    CHECK(refused == 1);
    auto second = s->GetPolicyVersion(2)->value();
    const uint64_t loser = second.change_id == other ? third : other;
    CHECK(s->GetPolicyChange(second.change_id)->value().state() == v1::APPLIED);
    CHECK(s->GetPolicyChange(loser)->value().state() == v1::APPROVED);
    CHECK(s->CurrentPolicyVersion()->value().number == 2);
    CHECK(s->GetPolicyVersion(1)->value().set_version == "sha256:first");
    auto chain =
        audit::VerifyChain(s->ListAudit(0, 1000).value(), std::string(audit::kHashSize, '\0'));
    CHECK_MESSAGE(chain.ok(), chain.status().ToString());
  }
}

v1::PolicyException Exception(const std::string& device_id, const std::string& tag,
                              const std::string& check) {
  v1::PolicyException e;
  e.set_id(999);  // the store numbers exceptions itself
  e.set_state(v1::EXCEPTION_REQUESTED);
  e.set_device_id(device_id);
  e.set_tag(tag);
  e.set_check(check);
  e.set_reason("vendor tool needs it until the migration");
  e.mutable_expires_at()->set_seconds(kNow / 1000 + 86400);
  e.set_requested_by("token:alice (admin)");
  return e;
}

TEST_CASE("store: exceptions are listed by state and updated by compare-and-swap, with alerts") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    auto replica = b.open();
    const size_t before = s->ListAudit(0, 1000)->size();
    const uint64_t a =
        s->InsertException(Exception("dev-a", "", "usb_storage"), Audit("exception.request"))
            .value();
    const uint64_t t =
        replica->InsertException(Exception("", "laptop", "screen_lock"), Audit("exception.request"))
            .value();
    const uint64_t c =
        s->InsertException(Exception("dev-c", "", "password_policy"), Audit("exception.request"))
            .value();
    CHECK(a < t);
    CHECK(t < c);
    v1::PolicyException got = replica->GetException(a)->value();
    CHECK(got.id() == a);
    CHECK(got.state() == v1::EXCEPTION_REQUESTED);
    CHECK(got.device_id() == "dev-a");
    CHECK(got.check() == "usb_storage");
    CHECK(got.expires_at().seconds() == kNow / 1000 + 86400);
    CHECK(!s->GetException(c + 100)->has_value());
    CHECK(s->ListExceptions(v1::EXCEPTION_STATE_UNSPECIFIED, 0, 100)->size() == 3);
    CHECK(s->ListExceptions(v1::EXCEPTION_ACTIVE, 0, 100)->empty());

    v1::PolicyException active = got;
    active.set_state(v1::EXCEPTION_ACTIVE);
    active.set_decided_by("token:bob (approver)");
    REQUIRE(s->UpdateException(active, v1::EXCEPTION_REQUESTED, Audit("exception.approve"), nullptr)
                .ok());
    auto listed = replica->ListExceptions(v1::EXCEPTION_ACTIVE, 0, 100).value();
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].id() == a);
    CHECK(listed[0].decided_by() == "token:bob (approver)");
    auto requested = s->ListExceptions(v1::EXCEPTION_REQUESTED, 0, 1).value();
    REQUIRE(requested.size() == 1);
    CHECK(requested[0].id() == t);
    CHECK(requested[0].tag() == "laptop");
    requested = s->ListExceptions(v1::EXCEPTION_REQUESTED, t, 10).value();
    REQUIRE(requested.size() == 1);
    CHECK(requested[0].id() == c);

    // A decision from a state the exception has left: refused, and its alert is not raised.
    AlertRecord alert;
    alert.kind = "exception.expired";
    alert.device_id = "dev-a";
    alert.at_ms = kNow + 7;
    alert.reason = "exception " + std::to_string(a) + " for usb_storage expired";
    alert.failing_checks = {"usb_storage"};
    v1::PolicyException expired = active;
    expired.set_state(v1::EXCEPTION_EXPIRED);
    expired.set_ended_by("server");
    CHECK(replica
              ->UpdateException(expired, v1::EXCEPTION_REQUESTED, Audit("exception.expire"), &alert)
              .code() == Status::Code::kFailedPrecondition);
    v1::PolicyException missing = expired;
    missing.set_id(c + 100);
    CHECK(s->UpdateException(missing, v1::EXCEPTION_ACTIVE, Audit("x"), &alert).code() ==
          Status::Code::kNotFound);
    CHECK(s->ListAlerts(0, 100, "")->empty());
    CHECK(s->GetException(a)->value().state() == v1::EXCEPTION_ACTIVE);

    // The expiry with its alert, in one transaction.
    REQUIRE(
        replica->UpdateException(expired, v1::EXCEPTION_ACTIVE, Audit("exception.expire"), &alert)
            .ok());
    auto alerts = s->ListAlerts(0, 100, "").value();
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].kind == "exception.expired");
    CHECK(alerts[0].device_id == "dev-a");
    CHECK(alerts[0].at_ms == kNow + 7);
    CHECK(alerts[0].failing_checks == std::vector<std::string>{"usb_storage"});
    CHECK(s->LastAlertId().value() == alerts[0].id);
    CHECK(s->GetException(a)->value().state() == v1::EXCEPTION_EXPIRED);
    CHECK(s->GetException(a)->value().ended_by() == "server");
    CHECK(s->ListExceptions(v1::EXCEPTION_ACTIVE, 0, 100)->empty());
    CHECK(AuditActions(*s, before) ==
          std::vector<std::string>{"exception.request", "exception.request", "exception.request",
                                   "exception.approve", "exception.expire"});
  }
}

TEST_CASE("store: EXCEPTED is an alert state: only leaving it for NON_COMPLIANT is news") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    auto s = b.open();
    DeviceRecord d = Device("dev-a", 'a');
    REQUIRE(s->InsertDevice(d, Audit("e")).ok());
    auto alerts = [&] { return s->ListAlerts(0, 100, "").value(); };
    auto judge = [&](v1::DeviceStatus status, std::vector<std::string> failing) {
      DeviceRecord now = s->GetDevice("dev-a")->value();
      now.status = status;
      now.failing_checks = std::move(failing);
      REQUIRE(s->UpdateVerdicts({now}).ok());
    };
    REQUIRE(s->CommitAttestation(Accepted(d, 1, v1::NON_COMPLIANT, {"usb_storage"})).ok());
    REQUIRE(alerts().size() == 1);
    // An exception covers the failure: accepted, not fixed, and not news either.
    judge(v1::EXCEPTED, {});
    CHECK(alerts().size() == 1);
    // The exception ends: non-compliant again, announced again.
    judge(v1::NON_COMPLIANT, {"usb_storage"});
    auto now = alerts();
    REQUIRE(now.size() == 2);
    CHECK(now[1].kind == "device.non_compliant");
    CHECK(now[1].previous == v1::EXCEPTED);
    CHECK(now[1].failing_checks == std::vector<std::string>{"usb_storage"});
    judge(v1::EXCEPTED, {});
    // Fixed while excepted: nothing was announced as failing since, so nothing to resolve.
    judge(v1::COMPLIANT, {});
    CHECK(alerts().size() == 2);
    // A report judged EXCEPTED: the same through the ingest path.
    REQUIRE(s->CommitAttestation(Accepted(d, 2, v1::EXCEPTED)).ok());
    CHECK(alerts().size() == 2);
    REQUIRE(s->CommitAttestation(Accepted(d, 3, v1::NON_COMPLIANT, {"screen_lock"})).ok());
    REQUIRE(alerts().size() == 3);
    CHECK(alerts()[2].previous == v1::EXCEPTED);
    // An excepted device that goes quiet is announced STALE like any other.
    REQUIRE(s->CommitAttestation(Accepted(d, 4, v1::EXCEPTED)).ok());
    CHECK(s->RaiseStaleAlerts(kNow + 1000, kNow + 2000).value() == 1);
    now = alerts();
    REQUIRE(now.size() == 4);
    CHECK(now[3].kind == "device.stale");
    CHECK(now[3].previous == v1::EXCEPTED);
  }
}

TEST_CASE("store: a database from before policy versions gets their tables and alert rule") {
  FOR_EACH_BACKEND(b) {
    CAPTURE(b.name);
    {
      auto s = b.open();
      REQUIRE(s->InsertDevice(Device("dev-a", 'a'), Audit("e")).ok());
      REQUIRE(s->CommitAttestation(Accepted(Device("dev-a", 'a'), 1, v1::COMPLIANT)).ok());
    }
    // The earlier release: no policy tables, and an alert rule that ignores EXCEPTED (a stand-in
    // that raises nothing at all).
    if (b.name == "sqlite") {
      b.exec(
          "DROP TABLE policy_changes; DROP TABLE policy_versions; DROP TABLE policy_exceptions; "
          "DROP TRIGGER devices_alert; CREATE TRIGGER devices_alert AFTER UPDATE OF status ON "
          "devices BEGIN SELECT 1; END;");
    } else {
      b.exec(
          "DROP TABLE policy_changes, policy_versions, policy_exceptions; "
          "CREATE OR REPLACE FUNCTION vigil_device_alert() RETURNS trigger LANGUAGE plpgsql AS "
          "$$ BEGIN RETURN NEW; END; $$;");
    }
    auto s = b.open();
    REQUIRE(s->ListPolicyChanges(0, 10).ok());
    CHECK(s->InsertPolicyChange(Change("a"), Audit("p")).ok());
    CHECK(s->InsertException(Exception("dev-a", "", "usb_storage"), Audit("x")).ok());
    CHECK(!s->CurrentPolicyVersion()->has_value());
    DeviceRecord d = s->GetDevice("dev-a")->value();
    REQUIRE(s->CommitAttestation(Accepted(d, 2, v1::EXCEPTED)).ok());
    REQUIRE(s->CommitAttestation(Accepted(d, 3, v1::NON_COMPLIANT, {"usb_storage"})).ok());
    auto alerts = s->ListAlerts(0, 100, "").value();
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].kind == "device.non_compliant");
    CHECK(alerts[0].previous == v1::EXCEPTED);
  }
}

}  // namespace
}  // namespace vigil::server

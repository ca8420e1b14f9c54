#include "server/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "proto/audit_chain.h"
#include "server/store_sql.h"

namespace vigil::server {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS devices(
  id TEXT PRIMARY KEY,
  key_id BLOB NOT NULL UNIQUE,
  public_key BLOB NOT NULL,
  hostname TEXT NOT NULL DEFAULT '',
  os TEXT NOT NULL DEFAULT '',
  platform BLOB,
  enrolled_at_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL DEFAULT 0,
  last_sequence INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL,
  status_reason TEXT NOT NULL DEFAULT '',
  failing_checks TEXT NOT NULL DEFAULT ',',
  tampered INTEGER NOT NULL DEFAULT 0,
  tamper_reason TEXT NOT NULL DEFAULT '',
  policy_version TEXT NOT NULL DEFAULT '',
  latest BLOB,
  pending INTEGER NOT NULL DEFAULT 0,
  revoked_at_ms INTEGER NOT NULL DEFAULT 0,
  revoke_reason TEXT NOT NULL DEFAULT '',
  alert_state INTEGER NOT NULL DEFAULT 0,
  tags TEXT NOT NULL DEFAULT ','
);
-- Rows in arrival order (rowid): a group commit appends to a few shared pages instead of
-- writing one page (and an overflow page) per attestation, as a (device_id, sequence) key did.
CREATE TABLE IF NOT EXISTS attestations(
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  digest BLOB NOT NULL,
  issued_at_ms INTEGER NOT NULL,
  received_at_ms INTEGER NOT NULL,
  status INTEGER NOT NULL,
  failing_checks TEXT NOT NULL,
  envelope BLOB NOT NULL,
  live INTEGER NOT NULL DEFAULT 1,
  UNIQUE(device_id, sequence)
);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_device ON events(device_id, id);
CREATE TABLE IF NOT EXISTS credentials(
  kind INTEGER NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  role INTEGER NOT NULL DEFAULT 0,
  hash BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL DEFAULT 0,
  revoked_at_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(kind, id),
  UNIQUE(kind, name)
);
CREATE TABLE IF NOT EXISTS audit(
  id INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  success INTEGER NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs(
  name TEXT PRIMARY KEY,
  last_run_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attestations_received ON attestations(received_at_ms);
-- The alert outbox (store_sql.h). AUTOINCREMENT: an id is never reused, even after pruning, so
-- it stays a valid idempotency key for receivers.
CREATE TABLE IF NOT EXISTS alerts(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  device_id TEXT NOT NULL,
  hostname TEXT NOT NULL,
  status INTEGER NOT NULL,
  previous INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  reason TEXT NOT NULL,
  failing_checks TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts(device_id, id);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action, at_ms);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES('instance', lower(hex(randomblob(8))));
CREATE TABLE IF NOT EXISTS alert_sinks(
  name TEXT PRIMARY KEY,
  delivered_id INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  failed INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT '',
  lease_until_ms INTEGER NOT NULL DEFAULT 0
);
-- Policy change requests, applied versions and exceptions (store.h). The message is the body;
-- the id and the state, its compare-and-swap guard, are columns (store_sql.h). AUTOINCREMENT:
-- an id, named in audit entries and alerts, is never reused.
CREATE TABLE IF NOT EXISTS policy_changes(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state INTEGER NOT NULL,
  body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_versions(
  number INTEGER PRIMARY KEY,
  change_id INTEGER NOT NULL,
  set_version TEXT NOT NULL,
  body BLOB NOT NULL,
  applied_at_ms INTEGER NOT NULL,
  applied_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_exceptions(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_exceptions_state ON policy_exceptions(state, id);
-- Append-only for the server's own connection; the hash chain catches edits made around it.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql";

// Columns added after the first release, for databases created before them.
constexpr const char* kMigrations[][2] = {
    {"SELECT pending FROM devices LIMIT 0",
     "ALTER TABLE devices ADD COLUMN pending INTEGER NOT NULL DEFAULT 0; "
     "ALTER TABLE devices ADD COLUMN revoked_at_ms INTEGER NOT NULL DEFAULT 0; "
     "ALTER TABLE devices ADD COLUMN revoke_reason TEXT NOT NULL DEFAULT '';"},
    {"SELECT live FROM attestations LIMIT 0",
     "ALTER TABLE attestations ADD COLUMN live INTEGER NOT NULL DEFAULT 1;"},
    // Devices already non-compliant or tampered were announced before alerts existed.
    {"SELECT alert_state FROM devices LIMIT 0",
     "ALTER TABLE devices ADD COLUMN alert_state INTEGER NOT NULL DEFAULT 0; "
     "ALTER TABLE devices ADD COLUMN tags TEXT NOT NULL DEFAULT ','; "
     "UPDATE devices SET alert_state=CASE WHEN revoked_at_ms<>0 THEN 8 WHEN tampered<>0 THEN 5 "
     "WHEN status IN (1, 2) THEN status ELSE 0 END;"},
};

// The highest alert id ever handed out: AUTOINCREMENT's record survives pruning, MAX(id) alone
// would not.
constexpr const char* kLastAlertId =
    "MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='alerts'), 0), "
    "COALESCE((SELECT MAX(id) FROM alerts), 0))";

constexpr const char* kNowMs = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

// The alert trigger (store_sql.h): on a change of a watched column that moves the device's
// alert state, the alert (when one is due) and the new state, in the changing transaction. The
// inner UPDATE touches no watched column, so it does not fire the trigger again. Dropped and
// made again at every start, so a database keeps no trigger of an earlier release.
std::string AlertSchema() {
  const std::string st = store_sql::AlertState();
  return std::string(
             "DROP TRIGGER IF EXISTS devices_alert;\n"
             "CREATE TRIGGER devices_alert AFTER UPDATE OF ") +
         store_sql::kAlertWatched + " ON devices WHEN " + st +
         " <> OLD.alert_state BEGIN "
         "INSERT INTO alerts(kind, device_id, hostname, status, previous, at_ms, reason, "
         "failing_checks) SELECT " +
         store_sql::AlertKind(st) + ", NEW.id, NEW.hostname, " + st + ", OLD.alert_state, " +
         store_sql::AlertAt(kNowMs) + ", " + store_sql::AlertReason(st) +
         ", NEW.failing_checks WHERE " + store_sql::AlertRaised(st) +
         "; UPDATE devices SET alert_state=" + st + " WHERE id=NEW.id; END;\n";
}

// The prepared statements of one connection, kept for its lifetime: preparing (parsing and
// planning) costs more than running most of the store's statements. Used only under the
// connection's mutex.
// Devices per status bucket (store_sql::Bucket), kept current by triggers in the transaction
// that changes a device, so counts cost a few rows at any fleet size.
std::string CountingSchema() {
  const std::string o = store_sql::Bucket("OLD"), n = store_sql::Bucket("NEW");
  const std::string add = "INSERT INTO status_counts(bucket, n) VALUES(" + n +
                          ", 1) ON CONFLICT(bucket) DO UPDATE SET n = n + 1;";
  return "CREATE TABLE IF NOT EXISTS status_counts(bucket INTEGER PRIMARY KEY, n INTEGER NOT "
         "NULL);\n"
         "CREATE TRIGGER IF NOT EXISTS devices_count_insert AFTER INSERT ON devices BEGIN " +
         add +
         " END;\n"
         "CREATE TRIGGER IF NOT EXISTS devices_count_update AFTER UPDATE ON devices WHEN " +
         o + " <> " + n + " BEGIN UPDATE status_counts SET n = n - 1 WHERE bucket = " + o + "; " +
         add +
         " END;\n"
         "CREATE TRIGGER IF NOT EXISTS devices_count_delete AFTER DELETE ON devices BEGIN "
         "UPDATE status_counts SET n = n - 1 WHERE bucket = " +
         o + "; END;\n";
}

class StmtCache {
 public:
  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    bool busy = false;
  };
  void Reset(sqlite3* db) {
    Clear();
    db_ = db;
  }
  void Clear() {
    for (auto& [sql, e] : map_) sqlite3_finalize(e.stmt);
    map_.clear();
  }
  ~StmtCache() { Clear(); }
  sqlite3* db() const { return db_; }
  Entry& At(const char* sql) { return map_[sql]; }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, Entry> map_;
};

class Stmt {
 public:
  // The cached statement for `sql`; a private one while the cached one is in use further up the
  // stack (or could not be prepared, so the error is this statement's).
  Stmt(StmtCache& cache, const char* sql) {
    StmtCache::Entry& e = cache.At(sql);
    if (e.stmt == nullptr) {
      rc_ = sqlite3_prepare_v3(cache.db(), sql, -1, SQLITE_PREPARE_PERSISTENT, &e.stmt, nullptr);
      if (rc_ != SQLITE_OK) {
        sqlite3_finalize(e.stmt);
        e.stmt = nullptr;
        return;
      }
    }
    if (e.busy) {
      rc_ = sqlite3_prepare_v2(cache.db(), sql, -1, &stmt_, nullptr);
      return;
    }
    e.busy = true;
    entry_ = &e;
    stmt_ = e.stmt;
    rc_ = SQLITE_OK;
  }
  ~Stmt() {
    if (entry_ == nullptr) {
      sqlite3_finalize(stmt_);
      return;
    }
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    entry_->busy = false;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  StmtCache::Entry* entry_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

constexpr const char* kDeviceColumns =
    "id, key_id, public_key, hostname, platform, enrolled_at_ms, last_seen_ms, last_sequence, "
    "status, status_reason, failing_checks, tampered, tamper_reason, policy_version, latest, "
    "pending, revoked_at_ms, revoke_reason, tags";
// The same columns without the latest attestation (kilobytes), which neither listings nor the
// ingest path need.
constexpr const char* kDeviceLeanColumns =
    "id, key_id, public_key, hostname, platform, enrolled_at_ms, last_seen_ms, last_sequence, "
    "status, status_reason, failing_checks, tampered, tamper_reason, policy_version, NULL, "
    "pending, revoked_at_ms, revoke_reason, tags";

DeviceRecord ReadDevice(Stmt& s) {
  DeviceRecord d;
  d.id = s.Text(0);
  d.key_id = s.Blob(1);
  d.public_key = s.Blob(2);
  d.hostname = s.Text(3);
  d.platform.ParseFromString(s.Blob(4));
  d.enrolled_at_ms = s.Int(5);
  d.last_seen_ms = s.Int(6);
  d.last_sequence = static_cast<uint64_t>(s.Int(7));
  d.status = static_cast<v1::DeviceStatus>(s.Int(8));
  d.status_reason = s.Text(9);
  d.failing_checks = store_sql::SplitChecks(s.Text(10));
  d.tampered = s.Int(11) != 0;
  d.tamper_reason = s.Text(12);
  d.policy_version = s.Text(13);
  d.latest_attestation = s.Blob(14);
  d.pending = s.Int(15) != 0;
  d.revoked_at_ms = s.Int(16);
  d.revoke_reason = s.Text(17);
  d.tags = store_sql::SplitChecks(s.Text(18));
  return d;
}

class SqliteStore final : public Store {
 public:
  // Writes go through `db`; reads through `reader` when given (a second connection: in WAL mode
  // it reads the last committed state without waiting for a writer's commit and fsync), else
  // through `db` as well (an in-memory database has no second connection to it).
  SqliteStore(sqlite3* db, sqlite3* reader)
      : db_(db), rdb_(reader ? reader : db), rmu_(reader ? &own_rmu_ : &mu_) {
    w_.Reset(db_);
    own_r_.Reset(reader);
    r_ = reader ? &own_r_ : &w_;
  }
  ~SqliteStore() override {
    if (ckpt_thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(ckpt_mu_);
        ckpt_stop_ = true;
      }
      ckpt_cv_.notify_one();
      ckpt_thread_.join();
      sqlite3_close(ckpt_db_);
    }
    // Statements first: a connection with unfinalized statements does not close.
    own_r_.Clear();
    w_.Clear();
    if (rdb_ != db_) sqlite3_close(rdb_);
    sqlite3_close(db_);
  }

  // Takes ownership of a second connection for reads (see the constructor).
  Status AttachReader(sqlite3* reader) {
    rdb_ = reader;
    rmu_ = &own_rmu_;
    own_r_.Reset(reader);
    r_ = &own_r_;
    return InitReader();
  }

  // Checkpoints (copying the WAL into the database file) run on their own connection and thread,
  // so the writer, which is the group committer, only appends to the WAL and fsyncs it. Under
  // continuous writes the checkpointer never catches the WAL's end, so SQLite never starts the
  // WAL over; at 4x the checkpointer's threshold the writer copies the rest itself (a few MB: the
  // checkpointer copied everything before it), the WAL restarts, and its size stays bounded.
  void StartCheckpointer(sqlite3* ckpt) {
    ckpt_db_ = ckpt;
    sqlite3_wal_hook(db_, &SqliteStore::WalHook, this);  // replaces SQLite's auto-checkpoint
    ckpt_thread_ = std::thread([this] { CheckpointLoop(); });
  }

  static constexpr int kCheckpointFrames = 1000;  // SQLite's default auto-checkpoint (~4 MB)
  static constexpr int kWriterCheckpointFrames = 4 * kCheckpointFrames;

  static int WalHook(void* self, sqlite3* db, const char* name, int frames) {
    auto* me = static_cast<SqliteStore*>(self);
    if (frames >= kWriterCheckpointFrames) {
      sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (frames >= kCheckpointFrames) {
      {
        std::lock_guard<std::mutex> lock(me->ckpt_mu_);
        me->ckpt_wanted_ = true;
      }
      me->ckpt_cv_.notify_one();
    }
    return SQLITE_OK;
  }

  void CheckpointLoop() {
    std::unique_lock<std::mutex> lock(ckpt_mu_);
    while (!ckpt_stop_) {
      ckpt_cv_.wait_for(lock, std::chrono::seconds(1),
                        [this] { return ckpt_stop_ || ckpt_wanted_; });
      if (ckpt_stop_) break;
      ckpt_wanted_ = false;
      lock.unlock();
      int rc =
          sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        spdlog::warn("store: checkpoint failed: {}", sqlite3_errmsg(ckpt_db_));
      }
      lock.lock();
    }
  }

  Status InitReader() {
    char* msg = nullptr;
    if (sqlite3_exec(rdb_, "PRAGMA busy_timeout=5000;", nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return Status::IoError("sqlite: " + m);
    }
    return Status::Ok();
  }

  Status Init() {
    const char* pragmas =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
        "PRAGMA busy_timeout=5000;";
    if (Status s = Exec(pragmas); !s.ok()) return s;
    // Only a table from an earlier release lacks a column; a fresh one gets it from kSchema.
    for (const auto& m : kMigrations) {
      Stmt probe(w_, m[0]);
      if (probe.ok()) continue;
      if (std::string(sqlite3_errmsg(db_)).find("no such table") != std::string::npos) continue;
      // One transaction (SQLite's DDL is transactional): a crash mid-way leaves none of it.
      if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
      if (Status s = Exec(m[1]); !s.ok()) return Rollback(s);
      if (Status s = Commit(); !s.ok()) return s;
    }
    // One transaction: the first release's attestations move to the arrival-ordered table, and
    // counters created now start from the devices already there.
    if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    // The first release keyed attestations by (device_id, sequence) WITHOUT ROWID.
    const bool rebuild = [&] {
      Stmt st(w_, "SELECT sql FROM sqlite_master WHERE type='table' AND name='attestations'");
      return st.Step() == SQLITE_ROW && st.Text(0).find("WITHOUT ROWID") != std::string::npos;
    }();
    const bool counted = [&] {
      Stmt st(w_, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='status_counts'");
      return st.Step() == SQLITE_ROW;
    }();
    if (rebuild) {
      if (Status s = Exec("ALTER TABLE attestations RENAME TO attestations_v1; "
                          "DROP INDEX IF EXISTS attestations_received;");
          !s.ok()) {
        return Rollback(s);
      }
    }
    if (Status s = Exec(
            (kSchema + std::string(store_sql::kDeviceIndexes) + CountingSchema() + AlertSchema())
                .c_str());
        !s.ok())
      return Rollback(s);
    if (rebuild) {
      if (Status s = Exec("INSERT INTO attestations(device_id, sequence, digest, issued_at_ms, "
                          "received_at_ms, status, failing_checks, envelope, live) SELECT "
                          "device_id, sequence, digest, issued_at_ms, received_at_ms, status, "
                          "failing_checks, envelope, live FROM attestations_v1 ORDER BY "
                          "received_at_ms, device_id, sequence; DROP TABLE attestations_v1;");
          !s.ok()) {
        return Rollback(s);
      }
      spdlog::info("store: attestations moved to the arrival-ordered table");
    }
    if (!counted) {
      std::string fill = "INSERT INTO status_counts(bucket, n) SELECT " + store_sql::Bucket("") +
                         ", COUNT(*) FROM devices GROUP BY 1";
      if (Status s = Exec(fill.c_str()); !s.ok()) return Rollback(s);
    }
    return Commit();
  }

  Status InsertDevice(const DeviceRecord& d, const AuditRecord& audit) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    Stmt st(w_,
            "INSERT INTO devices(id, key_id, public_key, hostname, os, platform, enrolled_at_ms, "
            "status, pending) VALUES(?,?,?,?,?,?,?,?,?)");
    if (!st.ok()) return Rollback(Err("prepare insert device"));
    st.Bind(1, d.id);
    st.BindBlob(2, d.key_id);
    st.BindBlob(3, d.public_key);
    st.Bind(4, d.hostname);
    st.Bind(5, d.platform.os());
    st.BindBlob(6, d.platform.SerializeAsString());
    st.Bind(7, d.enrolled_at_ms);
    st.Bind(8, static_cast<int64_t>(d.status));
    st.Bind(9, static_cast<int64_t>(d.pending ? 1 : 0));
    int rc = st.Step();
    if (rc == SQLITE_CONSTRAINT)
      return Rollback(Status::AlreadyExists("device or key already enrolled"));
    if (rc != SQLITE_DONE) return Rollback(Err("insert device"));
    if (Status s = AddEvent(d.id, d.enrolled_at_ms, "enrolled",
                            "key " + store_sql::HexPrefix(d.key_id) + " from host '" + d.hostname +
                                "'" + (d.pending ? "; pending approval" : ""));
        !s.ok()) {
      return Rollback(s);
    }
    if (Status s = Audit(audit); !s.ok()) return Rollback(s);
    return Commit();
  }

  Status ApproveDevice(const std::string& device_id, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_, "UPDATE devices SET pending=0 WHERE id=? AND revoked_at_ms=0");
          up.Bind(1, device_id);
          if (up.Step() != SQLITE_DONE) return Err("approve device");
          if (sqlite3_changes(db_) == 0) return NotFoundOrRevoked(device_id);
          return AddEvent(device_id, audit.at_ms, "approved", "by " + audit.actor);
        },
        &audit);
  }

  Status RevokeDevice(const std::string& device_id, const std::string& reason, int64_t at_ms,
                      const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_,
                  "UPDATE devices SET revoked_at_ms=CASE WHEN revoked_at_ms=0 THEN ? ELSE "
                  "revoked_at_ms END, revoke_reason=CASE WHEN revoked_at_ms=0 THEN ? ELSE "
                  "revoke_reason END WHERE id=?");
          up.Bind(1, at_ms);
          up.Bind(2, reason);
          up.Bind(3, device_id);
          if (up.Step() != SQLITE_DONE) return Err("revoke device");
          if (sqlite3_changes(db_) == 0) return Status::NotFound("no device '" + device_id + "'");
          return AddEvent(device_id, at_ms, "revoked", reason + " (by " + audit.actor + ")");
        },
        &audit);
  }

  Status ReplaceDeviceKey(const std::string& device_id, const std::string& old_key_id,
                          const std::string& new_public_key, const std::string& new_key_id,
                          int64_t at_ms, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_, "UPDATE devices SET key_id=?, public_key=? WHERE id=? AND key_id=?");
          up.BindBlob(1, new_key_id);
          up.BindBlob(2, new_public_key);
          up.Bind(3, device_id);
          up.BindBlob(4, old_key_id);
          int rc = up.Step();
          if (rc == SQLITE_CONSTRAINT)
            return Status::AlreadyExists("the new key is already enrolled");
          if (rc != SQLITE_DONE) return Err("replace device key");
          if (sqlite3_changes(db_) == 0) {
            return Status::FailedPrecondition("the device key changed since it was read");
          }
          return AddEvent(device_id, at_ms, "key-rotated",
                          "key " + store_sql::HexPrefix(old_key_id) + " replaced by " +
                              store_sql::HexPrefix(new_key_id));
        },
        &audit);
  }

  Result<std::optional<DeviceRecord>> FindDeviceByKeyId(const std::string& key_id) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    // Lean: the ingest path needs the device's state, not its latest evidence.
    std::string sql = std::string("SELECT ") + kDeviceLeanColumns + " FROM devices WHERE key_id=?";
    Stmt st(*r_, sql.c_str());
    st.BindBlob(1, key_id);
    return OneDevice(st);
  }

  Result<std::optional<DeviceRecord>> GetDevice(const std::string& id) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    std::string sql = std::string("SELECT ") + kDeviceColumns + " FROM devices WHERE id=?";
    Stmt st(*r_, sql.c_str());
    st.Bind(1, id);
    return OneDevice(st);
  }

  Result<std::optional<std::string>> AttestationDigest(const std::string& device_id,
                                                       uint64_t sequence) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, "SELECT digest FROM attestations WHERE device_id=? AND sequence=?");
    st.Bind(1, device_id);
    st.Bind(2, static_cast<int64_t>(sequence));
    int rc = st.Step();
    if (rc == SQLITE_ROW) return std::optional<std::string>(st.Blob(0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return RErr("read attestation digest");
  }

  Status CommitAttestation(const AcceptedAttestation& a) override {
    return WriteTx([&] { return CommitOne(a); }, nullptr);
  }

  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    return WriteTx(
        [&]() -> Status {
          for (const AcceptedAttestation* a : batch) {
            if (Status s = CommitOne(*a); !s.ok()) return s;
          }
          return Status::Ok();
        },
        nullptr);
  }

  Status UpdateVerdicts(const std::vector<DeviceRecord>& devices) override {
    return WriteTx(
        [&]() -> Status {
          for (const DeviceRecord& d : devices) {
            Stmt up(w_,
                    "UPDATE devices SET status=?, status_reason=?, failing_checks=?, "
                    "policy_version=?, latest=? WHERE id=? AND last_sequence=?");
            up.Bind(1, static_cast<int64_t>(d.status));
            up.Bind(2, d.status_reason);
            up.Bind(3, store_sql::JoinChecks(d.failing_checks));
            up.Bind(4, d.policy_version);
            up.BindBlob(5, d.latest_attestation);
            up.Bind(6, d.id);
            up.Bind(7, static_cast<int64_t>(d.last_sequence));
            if (up.Step() != SQLITE_DONE) return Err("update verdict");
          }
          return Status::Ok();
        },
        nullptr);
  }

  Status MarkTampered(const std::string& device_id, const std::string& reason, int64_t at_ms,
                      const AuditRecord& audit) override {
    // The first reason is kept; repeats (a flood of forgeries naming the device) are counted by
    // the caller but add no rows.
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_, "UPDATE devices SET tampered=1, tamper_reason=? WHERE id=? AND tampered=0");
          up.Bind(1, reason);
          up.Bind(2, device_id);
          if (up.Step() != SQLITE_DONE) return Err("mark tampered");
          if (sqlite3_changes(db_) == 0) return Status::Ok();
          if (Status s = AddEvent(device_id, at_ms, "tampered", reason); !s.ok()) return s;
          return Audit(audit);
        },
        nullptr);
  }

  Result<std::vector<DeviceRecord>> ListDevices(const DeviceFilter& f) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    std::string sql = std::string("SELECT ") + kDeviceLeanColumns + " FROM devices WHERE id > ?1";
    sql += store_sql::StatusFilter(f.status, '?');
    // Exact, case-sensitive match of one whole id inside ",a,b," (LIKE would treat % and _ as
    // wildcards and ignore case).
    if (!f.failing_check.empty()) sql += " AND instr(failing_checks, ?4) > 0";
    if (!f.os.empty()) sql += " AND os=?5";
    if (!f.tag.empty()) sql += " AND instr(tags, ?7) > 0";
    if (f.not_seen_since_ms != 0) sql += " AND last_seen_ms < ?8";
    sql += " ORDER BY id LIMIT ?6";
    Stmt st(*r_, sql.c_str());
    if (!st.ok()) return RErr("prepare list devices");
    st.Bind(1, f.after_id);
    st.Bind(2, f.stale_before_ms);
    st.Bind(3, static_cast<int64_t>(f.status));
    st.Bind(4, "," + f.failing_check + ",");
    st.Bind(5, f.os);
    st.Bind(6, static_cast<int64_t>(f.limit));
    st.Bind(7, "," + f.tag + ",");
    st.Bind(8, f.not_seen_since_ms);
    std::vector<DeviceRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      out.push_back(ReadDevice(st));
    }
    if (rc != SQLITE_DONE) return RErr("list devices");
    return out;
  }

  Result<std::vector<HistoryRow>> History(const std::string& device_id, uint32_t limit) override {
    return HistoryRange(device_id, 0, 0, 0, limit);
  }

  Result<std::vector<EventRow>> Events(const std::string& device_id, uint32_t limit) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_,
            "SELECT at_ms, kind, detail FROM events WHERE device_id=? ORDER BY id DESC LIMIT ?");
    st.Bind(1, device_id);
    st.Bind(2, static_cast<int64_t>(limit));
    std::vector<EventRow> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back({st.Int(0), st.Text(1), st.Text(2)});
    if (rc != SQLITE_DONE) return RErr("read events");
    return out;
  }

  Result<std::vector<std::pair<v1::DeviceStatus, uint64_t>>> CountByStatus(
      int64_t stale_before_ms) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, store_sql::CountsQuery('?').c_str());
    st.Bind(1, stale_before_ms);
    std::vector<std::pair<int64_t, int64_t>> rows;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) rows.emplace_back(st.Int(0), st.Int(1));
    if (rc != SQLITE_DONE) return RErr("count devices");
    return store_sql::CountsFromRows(rows);
  }

  Status InsertCredential(const CredentialRecord& c, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Stmt st(w_,
                  "INSERT INTO credentials(kind, id, name, role, hash, created_at_ms, "
                  "expires_at_ms) VALUES(?,?,?,?,?,?,?)");
          st.Bind(1, static_cast<int64_t>(c.kind));
          st.Bind(2, c.id);
          st.Bind(3, c.name);
          st.Bind(4, static_cast<int64_t>(c.role));
          st.BindBlob(5, c.hash);
          st.Bind(6, c.created_at_ms);
          st.Bind(7, c.expires_at_ms);
          int rc = st.Step();
          if (rc == SQLITE_CONSTRAINT) {
            return Status::AlreadyExists("a credential named '" + c.name + "' already exists");
          }
          return rc == SQLITE_DONE ? Status::Ok() : Err("insert credential");
        },
        &audit);
  }

  Result<std::optional<CredentialRecord>> FindCredential(CredentialKind kind,
                                                         const std::string& id) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    std::string sql =
        std::string("SELECT ") + kCredentialColumns + " FROM credentials WHERE kind=? AND id=?";
    Stmt st(*r_, sql.c_str());
    st.Bind(1, static_cast<int64_t>(kind));
    st.Bind(2, id);
    int rc = st.Step();
    if (rc == SQLITE_ROW) return std::optional<CredentialRecord>(ReadCredential(st));
    if (rc == SQLITE_DONE) return std::optional<CredentialRecord>();
    return RErr("read credential");
  }

  Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    std::string sql = std::string("SELECT ") + kCredentialColumns +
                      " FROM credentials WHERE kind=? ORDER BY created_at_ms, name";
    Stmt st(*r_, sql.c_str());
    st.Bind(1, static_cast<int64_t>(kind));
    std::vector<CredentialRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadCredential(st));
    if (rc != SQLITE_DONE) return RErr("list credentials");
    return out;
  }

  Status RevokeCredential(CredentialKind kind, const std::string& id_or_name, int64_t at_ms,
                          const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_,
                  "UPDATE credentials SET revoked_at_ms=? WHERE kind=? AND (id=? OR name=?) AND "
                  "revoked_at_ms=0");
          up.Bind(1, at_ms);
          up.Bind(2, static_cast<int64_t>(kind));
          up.Bind(3, id_or_name);
          up.Bind(4, id_or_name);
          if (up.Step() != SQLITE_DONE) return Err("revoke credential");
          if (sqlite3_changes(db_) == 0) {
            return Status::NotFound("no valid credential with id or name '" + id_or_name + "'");
          }
          return Status::Ok();
        },
        &audit);
  }

  Result<bool> ClaimJob(const std::string& name, int64_t now_ms, int64_t period_ms) override {
    bool claimed = false;
    Status st = WriteTx(
        [&]() -> Status {
          Stmt ins(w_, "INSERT OR IGNORE INTO jobs(name, last_run_ms) VALUES(?, 0)");
          ins.Bind(1, name);
          if (ins.Step() != SQLITE_DONE) return Err("insert job");
          Stmt up(w_, "UPDATE jobs SET last_run_ms=? WHERE name=? AND last_run_ms<=?");
          up.Bind(1, now_ms);
          up.Bind(2, name);
          up.Bind(3, now_ms - period_ms);
          if (up.Step() != SQLITE_DONE) return Err("claim job");
          claimed = sqlite3_changes(db_) > 0;
          return Status::Ok();
        },
        nullptr);
    if (!st.ok()) return st;
    return claimed;
  }

  Result<uint64_t> PruneHistory(int64_t before_ms) override {
    uint64_t deleted = 0;
    Status st = WriteTx(
        [&]() -> Status {
          Stmt del(w_,
                   "DELETE FROM attestations WHERE received_at_ms < ? AND sequence < (SELECT "
                   "last_sequence FROM devices WHERE devices.id = attestations.device_id)");
          del.Bind(1, before_ms);
          if (del.Step() != SQLITE_DONE) return Err("prune history");
          deleted = static_cast<uint64_t>(sqlite3_changes(db_));
          // Alerts as old, once every sink in use within the period has delivered them (a sink
          // removed from the configuration holds nothing back for longer than that).
          Stmt alerts(w_,
                      "DELETE FROM alerts WHERE at_ms < ?1 AND id <= (SELECT "
                      "COALESCE(MIN(delivered_id), 9223372036854775807) FROM alert_sinks WHERE "
                      "lease_until_ms >= ?1)");
          alerts.Bind(1, before_ms);
          if (alerts.Step() != SQLITE_DONE) return Err("prune alerts");
          return Status::Ok();
        },
        nullptr);
    if (!st.ok()) return st;
    return deleted;
  }

  Result<std::vector<HistoryRow>> HistoryRange(const std::string& device_id, int64_t since_ms,
                                               int64_t until_ms, uint64_t before_sequence,
                                               uint32_t limit) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_,
            "SELECT sequence, issued_at_ms, received_at_ms, status, failing_checks FROM "
            "attestations WHERE device_id=?1 AND sequence<?2 AND received_at_ms>=?3 AND "
            "received_at_ms<?4 ORDER BY sequence DESC LIMIT ?5");
    st.Bind(1, device_id);
    st.Bind(2, before_sequence ? static_cast<int64_t>(before_sequence) : INT64_MAX);
    st.Bind(3, since_ms);
    st.Bind(4, until_ms ? until_ms : INT64_MAX);
    st.Bind(5, static_cast<int64_t>(limit));
    std::vector<HistoryRow> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      HistoryRow h;
      h.sequence = static_cast<uint64_t>(st.Int(0));
      h.issued_at_ms = st.Int(1);
      h.received_at_ms = st.Int(2);
      h.status = static_cast<v1::DeviceStatus>(st.Int(3));
      h.failing_checks = store_sql::SplitChecks(st.Text(4));
      out.push_back(std::move(h));
    }
    if (rc != SQLITE_DONE) return RErr("read history");
    return out;
  }

  Result<std::vector<ExportRow>> ExportRows(const std::string& from_device, uint64_t after_sequence,
                                            int64_t since_ms, int64_t until_ms,
                                            uint32_t limit) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_,
            "SELECT device_id, sequence, issued_at_ms, received_at_ms, status, failing_checks, "
            "digest, envelope FROM attestations WHERE (device_id>?1 OR (device_id=?1 AND "
            "sequence>?2)) AND received_at_ms>=?3 AND received_at_ms<?4 "
            "ORDER BY device_id, sequence LIMIT ?5");
    st.Bind(1, from_device);
    st.Bind(2, static_cast<int64_t>(after_sequence));
    st.Bind(3, since_ms);
    st.Bind(4, until_ms ? until_ms : INT64_MAX);
    st.Bind(5, static_cast<int64_t>(limit));
    std::vector<ExportRow> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      ExportRow e;
      e.device_id = st.Text(0);
      e.sequence = static_cast<uint64_t>(st.Int(1));
      e.issued_at_ms = st.Int(2);
      e.received_at_ms = st.Int(3);
      e.status = static_cast<v1::DeviceStatus>(st.Int(4));
      e.failing_checks = store_sql::SplitChecks(st.Text(5));
      e.digest = st.Blob(6);
      if (!e.envelope.ParseFromString(st.Blob(7))) {
        return Status::IoError("stored attestation " + e.device_id + "/" +
                               std::to_string(e.sequence) + " does not parse");
      }
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return RErr("export attestations");
    return out;
  }

  Status SetDeviceTags(const std::string& device_id, const std::vector<std::string>& tags,
                       const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_, "UPDATE devices SET tags=? WHERE id=?");
          up.Bind(1, store_sql::JoinChecks(tags));
          up.Bind(2, device_id);
          if (up.Step() != SQLITE_DONE) return Err("set tags");
          if (sqlite3_changes(db_) == 0) return Status::NotFound("no device '" + device_id + "'");
          return Status::Ok();
        },
        &audit);
  }

  Result<uint64_t> RaiseStaleAlerts(int64_t stale_before_ms, int64_t now_ms) override {
    uint64_t raised = 0;
    // The stale devices are exactly those StatusFilter(STALE) selects, not yet announced.
    const std::string where = std::string(" WHERE alert_state IN ") +
                              store_sql::kVerdictAlertStates +
                              store_sql::StatusFilter(v1::STALE, '?');
    Status st = WriteTx(
        [&]() -> Status {
          std::string ins =
              "INSERT INTO alerts(kind, device_id, hostname, status, previous, at_ms, reason, "
              "failing_checks) SELECT 'device.stale', id, hostname, 4, alert_state, ?1, "
              "'no attestation within the check-in window', failing_checks FROM devices" +
              where + " ORDER BY id";
          Stmt a(w_, ins.c_str());
          a.Bind(1, now_ms);
          a.Bind(2, stale_before_ms);
          if (a.Step() != SQLITE_DONE) return Err("raise stale alerts");
          raised = static_cast<uint64_t>(sqlite3_changes(db_));
          std::string up = "UPDATE devices SET alert_state=4" + where;
          Stmt u(w_, up.c_str());
          u.Bind(2, stale_before_ms);
          if (u.Step() != SQLITE_DONE) return Err("mark stale alerts");
          return Status::Ok();
        },
        nullptr);
    if (!st.ok()) return st;
    return raised;
  }

  Result<uint64_t> InsertAlert(const AlertRecord& a) override {
    uint64_t id = 0;
    Status st = WriteTx([&] { return AddAlert(a, &id); }, nullptr);
    if (!st.ok()) return st;
    return id;
  }

  Result<std::vector<AlertRecord>> ListAlerts(uint64_t after_id, uint32_t limit,
                                              const std::string& device_id) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    const char* sql =
        device_id.empty()
            ? "SELECT id, kind, device_id, hostname, status, previous, at_ms, reason, "
              "failing_checks FROM alerts WHERE id>?1 ORDER BY id LIMIT ?2"
            : "SELECT id, kind, device_id, hostname, status, previous, at_ms, reason, "
              "failing_checks FROM alerts WHERE device_id=?3 AND id>?1 ORDER BY id LIMIT ?2";
    Stmt st(*r_, sql);
    st.Bind(1, static_cast<int64_t>(after_id));
    st.Bind(2, static_cast<int64_t>(limit));
    if (!device_id.empty()) st.Bind(3, device_id);
    std::vector<AlertRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AlertRecord a;
      a.id = static_cast<uint64_t>(st.Int(0));
      a.kind = st.Text(1);
      a.device_id = st.Text(2);
      a.hostname = st.Text(3);
      a.status = static_cast<v1::DeviceStatus>(st.Int(4));
      a.previous = static_cast<v1::DeviceStatus>(st.Int(5));
      a.at_ms = st.Int(6);
      a.reason = st.Text(7);
      a.failing_checks = store_sql::SplitChecks(st.Text(8));
      out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) return RErr("list alerts");
    return out;
  }

  Result<uint64_t> LastAlertId() override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, (std::string("SELECT ") + kLastAlertId).c_str());
    if (st.Step() != SQLITE_ROW) return RErr("read last alert id");
    return static_cast<uint64_t>(st.Int(0));
  }

  Result<std::string> InstanceId() override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, "SELECT value FROM meta WHERE key='instance'");
    if (st.Step() != SQLITE_ROW) return RErr("read instance id");
    return st.Text(0);
  }

  Result<std::optional<SinkCursor>> LeaseSink(const std::string& sink, const std::string& owner,
                                              int64_t now_ms, int64_t lease_ms) override {
    std::optional<SinkCursor> out;
    Status st = WriteTx(
        [&]() -> Status {
          Stmt ins(
              w_, (std::string("INSERT OR IGNORE INTO alert_sinks(name, delivered_id) SELECT ?, ") +
                   kLastAlertId)
                      .c_str());
          ins.Bind(1, sink);
          if (ins.Step() != SQLITE_DONE) return Err("add alert sink");
          Stmt up(w_,
                  "UPDATE alert_sinks SET owner=?2, lease_until_ms=?3 WHERE name=?1 AND "
                  "(owner=?2 OR lease_until_ms<=?4)");
          up.Bind(1, sink);
          up.Bind(2, owner);
          up.Bind(3, now_ms + lease_ms);
          up.Bind(4, now_ms);
          if (up.Step() != SQLITE_DONE) return Err("lease alert sink");
          if (sqlite3_changes(db_) == 0) return Status::Ok();
          Stmt sel(
              w_,
              (std::string("SELECT ") + kSinkColumns + " FROM alert_sinks WHERE name=?").c_str());
          sel.Bind(1, sink);
          if (sel.Step() != SQLITE_ROW) return Err("read alert sink");
          out = ReadSink(sel);
          return Status::Ok();
        },
        nullptr);
    if (!st.ok()) return st;
    return out;
  }

  Status UpdateSink(const SinkCursor& c) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_,
                  "UPDATE alert_sinks SET delivered_id=?, attempts=?, next_attempt_ms=?, "
                  "last_error=?, failed=? WHERE name=? AND owner=? AND lease_until_ms=?");
          up.Bind(1, static_cast<int64_t>(c.delivered_id));
          up.Bind(2, static_cast<int64_t>(c.attempts));
          up.Bind(3, c.next_attempt_ms);
          up.Bind(4, c.last_error);
          up.Bind(5, static_cast<int64_t>(c.failed));
          up.Bind(6, c.sink);
          up.Bind(7, c.owner);
          up.Bind(8, c.lease_until_ms);
          if (up.Step() != SQLITE_DONE) return Err("update alert sink");
          if (sqlite3_changes(db_) == 0) {
            return Status::FailedPrecondition("the lease on alert sink '" + c.sink + "' was lost");
          }
          return Status::Ok();
        },
        nullptr);
  }

  Result<std::vector<SinkCursor>> ListSinks() override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_,
            (std::string("SELECT ") + kSinkColumns + " FROM alert_sinks ORDER BY name").c_str());
    std::vector<SinkCursor> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadSink(st));
    if (rc != SQLITE_DONE) return RErr("list alert sinks");
    return out;
  }

  Result<uint64_t> CountAuthFailures(const std::string& target_prefix, int64_t since_ms) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_,
            "SELECT COUNT(*) FROM audit WHERE action='auth.failed' AND at_ms>=?2 AND success=0 "
            "AND substr(target, 1, length(?1))=?1");
    st.Bind(1, target_prefix);
    st.Bind(2, since_ms);
    if (st.Step() != SQLITE_ROW) return RErr("count audit");
    return static_cast<uint64_t>(st.Int(0));
  }

  Result<uint64_t> InsertPolicyChange(const v1::PolicyChange& change,
                                      const AuditRecord& audit) override {
    uint64_t id = 0;
    Status st = WriteTx(
        [&]() -> Status {
          Stmt ins(w_, "INSERT INTO policy_changes(state, body) VALUES(?,?)");
          ins.Bind(1, static_cast<int64_t>(change.state()));
          ins.BindBlob(2, store_sql::ChangeBody(change));
          if (ins.Step() != SQLITE_DONE) return Err("insert policy change");
          id = static_cast<uint64_t>(sqlite3_last_insert_rowid(db_));
          return Status::Ok();
        },
        &audit);
    if (!st.ok()) return st;
    return id;
  }

  Status UpdatePolicyChange(const v1::PolicyChange& change, v1::PolicyChangeState from,
                            const AuditRecord& audit) override {
    return WriteTx([&] { return CasChange(change, from); }, &audit);
  }

  Result<std::optional<v1::PolicyChange>> GetPolicyChange(uint64_t id) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, "SELECT id, state, body FROM policy_changes WHERE id=?");
    st.Bind(1, static_cast<int64_t>(id));
    int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<v1::PolicyChange>();
    if (rc != SQLITE_ROW) return RErr("read policy change");
    auto c = store_sql::ChangeFromRow(st.Int(0), st.Int(1), st.Blob(2));
    if (!c.ok()) return c.status();
    return std::optional<v1::PolicyChange>(std::move(c).value());
  }

  Result<std::vector<v1::PolicyChange>> ListPolicyChanges(uint64_t after_id,
                                                          uint32_t limit) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, "SELECT id, state, body FROM policy_changes WHERE id>? ORDER BY id LIMIT ?");
    st.Bind(1, static_cast<int64_t>(after_id));
    st.Bind(2, static_cast<int64_t>(limit));
    std::vector<v1::PolicyChange> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      auto c = store_sql::ChangeFromRow(st.Int(0), st.Int(1), st.Blob(2));
      if (!c.ok()) return c.status();
      out.push_back(std::move(c).value());
    }
    if (rc != SQLITE_DONE) return RErr("list policy changes");
    return out;
  }

  Status ApplyPolicyVersion(const PolicyVersionRecord& version, const v1::PolicyChange& change,
                            v1::PolicyChangeState from, const AuditRecord& audit) override {
    // One writer: the number read here cannot move before the commit.
    return WriteTx(
        [&]() -> Status {
          Stmt cur(w_, "SELECT COALESCE(MAX(number), 0) FROM policy_versions");
          if (cur.Step() != SQLITE_ROW) return Err("read policy version");
          if (Status s = store_sql::NextVersion(version.number, static_cast<uint64_t>(cur.Int(0)));
              !s.ok()) {
            return s;
          }
          Stmt ins(w_,
                   "INSERT INTO policy_versions(number, change_id, set_version, body, "
                   "applied_at_ms, applied_by) VALUES(?,?,?,?,?,?)");
          ins.Bind(1, static_cast<int64_t>(version.number));
          ins.Bind(2, static_cast<int64_t>(version.change_id));
          ins.Bind(3, version.set_version);
          ins.BindBlob(4, version.set.SerializeAsString());
          ins.Bind(5, version.applied_at_ms);
          ins.Bind(6, version.applied_by);
          int rc = ins.Step();
          if (rc == SQLITE_CONSTRAINT) {
            return Status::FailedPrecondition("policy version " + std::to_string(version.number) +
                                              " was applied meanwhile");
          }
          if (rc != SQLITE_DONE) return Err("insert policy version");
          return CasChange(change, from);
        },
        &audit);
  }

  Result<std::optional<PolicyVersionRecord>> CurrentPolicyVersion() override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, (std::string("SELECT ") + kVersionColumns +
                  " FROM policy_versions ORDER BY number DESC LIMIT 1")
                     .c_str());
    int rc = st.Step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return RErr("read policy version");
    return OneVersion(st, rc);
  }

  Result<std::optional<PolicyVersionRecord>> GetPolicyVersion(uint64_t number) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, (std::string("SELECT ") + kVersionColumns + " FROM policy_versions WHERE number=?")
                     .c_str());
    st.Bind(1, static_cast<int64_t>(number));
    int rc = st.Step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return RErr("read policy version");
    return OneVersion(st, rc);
  }

  Result<uint64_t> InsertException(const v1::PolicyException& exception,
                                   const AuditRecord& audit) override {
    uint64_t id = 0;
    Status st = WriteTx(
        [&]() -> Status {
          Stmt ins(w_, "INSERT INTO policy_exceptions(state, expires_at_ms, body) VALUES(?,?,?)");
          ins.Bind(1, static_cast<int64_t>(exception.state()));
          ins.Bind(2, store_sql::TimestampMs(exception.expires_at()));
          ins.BindBlob(3, store_sql::ExceptionBody(exception));
          if (ins.Step() != SQLITE_DONE) return Err("insert exception");
          id = static_cast<uint64_t>(sqlite3_last_insert_rowid(db_));
          return Status::Ok();
        },
        &audit);
    if (!st.ok()) return st;
    return id;
  }

  Status UpdateException(const v1::PolicyException& exception, v1::ExceptionState from,
                         const AuditRecord& audit, const AlertRecord* alert) override {
    return WriteTx(
        [&]() -> Status {
          Stmt up(w_,
                  "UPDATE policy_exceptions SET state=?, expires_at_ms=?, body=? WHERE id=? AND "
                  "state=?");
          up.Bind(1, static_cast<int64_t>(exception.state()));
          up.Bind(2, store_sql::TimestampMs(exception.expires_at()));
          up.BindBlob(3, store_sql::ExceptionBody(exception));
          up.Bind(4, static_cast<int64_t>(exception.id()));
          up.Bind(5, static_cast<int64_t>(from));
          if (up.Step() != SQLITE_DONE) return Err("update exception");
          if (sqlite3_changes(db_) == 0) {
            Stmt now(w_, "SELECT state FROM policy_exceptions WHERE id=?");
            now.Bind(1, static_cast<int64_t>(exception.id()));
            int rc = now.Step();
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Err("read exception");
            std::optional<std::string> state;
            if (rc == SQLITE_ROW) {
              state = v1::ExceptionState_Name(static_cast<v1::ExceptionState>(now.Int(0)));
            }
            return store_sql::StateMoved("exception", exception.id(), state,
                                         v1::ExceptionState_Name(from));
          }
          if (alert == nullptr) return Status::Ok();
          uint64_t id = 0;
          return AddAlert(*alert, &id);
        },
        &audit);
  }

  Result<std::optional<v1::PolicyException>> GetException(uint64_t id) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_, "SELECT id, state, body FROM policy_exceptions WHERE id=?");
    st.Bind(1, static_cast<int64_t>(id));
    int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<v1::PolicyException>();
    if (rc != SQLITE_ROW) return RErr("read exception");
    auto e = store_sql::ExceptionFromRow(st.Int(0), st.Int(1), st.Blob(2));
    if (!e.ok()) return e.status();
    return std::optional<v1::PolicyException>(std::move(e).value());
  }

  Result<std::vector<v1::PolicyException>> ListExceptions(v1::ExceptionState state,
                                                          uint64_t after_id,
                                                          uint32_t limit) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    const char* sql =
        state == v1::EXCEPTION_STATE_UNSPECIFIED
            ? "SELECT id, state, body FROM policy_exceptions WHERE id>?1 ORDER BY id LIMIT ?2"
            : "SELECT id, state, body FROM policy_exceptions WHERE state=?3 AND id>?1 "
              "ORDER BY id LIMIT ?2";
    Stmt st(*r_, sql);
    st.Bind(1, static_cast<int64_t>(after_id));
    st.Bind(2, static_cast<int64_t>(limit));
    if (state != v1::EXCEPTION_STATE_UNSPECIFIED) st.Bind(3, static_cast<int64_t>(state));
    std::vector<v1::PolicyException> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      auto e = store_sql::ExceptionFromRow(st.Int(0), st.Int(1), st.Blob(2));
      if (!e.ok()) return e.status();
      out.push_back(std::move(e).value());
    }
    if (rc != SQLITE_DONE) return RErr("list exceptions");
    return out;
  }

  Status AppendAudit(const AuditRecord& audit) override {
    return WriteTx([] { return Status::Ok(); }, &audit);
  }

  Result<std::vector<v1::AuditEntry>> ListAudit(uint64_t after_id, uint32_t limit) override {
    std::lock_guard<std::mutex> lock(*rmu_);
    Stmt st(*r_,
            "SELECT id, at_ms, actor, action, target, detail, success, prev_hash, hash FROM audit "
            "WHERE id > ? ORDER BY id LIMIT ?");
    st.Bind(1, static_cast<int64_t>(after_id));
    st.Bind(2, static_cast<int64_t>(limit));
    std::vector<v1::AuditEntry> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      v1::AuditEntry e;
      e.set_id(static_cast<uint64_t>(st.Int(0)));
      e.set_at_ms(st.Int(1));
      e.set_actor(st.Text(2));
      e.set_action(st.Text(3));
      e.set_target(st.Text(4));
      e.set_detail(st.Text(5));
      e.set_success(st.Int(6) != 0);
      e.set_prev_hash(st.Blob(7));
      e.set_hash(st.Blob(8));
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return RErr("read audit log");
    return out;
  }

 private:
  // One attestation inside the caller's write transaction.
  Status CommitOne(const AcceptedAttestation& a) {
    Stmt ins(w_,
             "INSERT INTO attestations(device_id, sequence, digest, issued_at_ms, received_at_ms, "
             "status, failing_checks, envelope, live) VALUES(?,?,?,?,?,?,?,?,?)");
    ins.Bind(1, a.device_id);
    ins.Bind(2, static_cast<int64_t>(a.sequence));
    ins.BindBlob(3, a.digest);
    ins.Bind(4, a.issued_at_ms);
    ins.Bind(5, a.received_at_ms);
    ins.Bind(6, static_cast<int64_t>(a.device_after.status));
    ins.Bind(7, store_sql::JoinChecks(a.device_after.failing_checks));
    ins.BindBlob(8, a.envelope.SerializeAsString());
    ins.Bind(9, static_cast<int64_t>(a.live ? 1 : 0));
    int rc = ins.Step();
    if (rc == SQLITE_CONSTRAINT) return Status::AlreadyExists("attestation already stored");
    if (rc != SQLITE_DONE) return Err("insert attestation");
    const DeviceRecord& d = a.device_after;
    if (!a.live) {
      Stmt seq(w_,
               "UPDATE devices SET last_sequence=MAX(last_sequence, ?) WHERE id=? AND "
               "revoked_at_ms=0");
      seq.Bind(1, static_cast<int64_t>(a.sequence));
      seq.Bind(2, d.id);
      if (seq.Step() != SQLITE_DONE) return Err("update device sequence");
      if (sqlite3_changes(db_) == 0) return NotFoundOrRevoked(d.id);
      return Status::Ok();
    }
    Stmt up(w_,
            "UPDATE devices SET last_seen_ms=?, last_sequence=?, status=?, status_reason=?, "
            "failing_checks=?, policy_version=?, latest=?, platform=?, hostname=?, os=? "
            "WHERE id=? AND revoked_at_ms=0 AND last_sequence < ?");
    up.Bind(1, d.last_seen_ms);
    up.Bind(2, static_cast<int64_t>(d.last_sequence));
    up.Bind(3, static_cast<int64_t>(d.status));
    up.Bind(4, d.status_reason);
    up.Bind(5, store_sql::JoinChecks(d.failing_checks));
    up.Bind(6, d.policy_version);
    up.BindBlob(7, d.latest_attestation);
    up.BindBlob(8, d.platform.SerializeAsString());
    up.Bind(9, d.hostname);
    up.Bind(10, d.platform.os());
    up.Bind(11, d.id);
    up.Bind(12, static_cast<int64_t>(d.last_sequence));
    if (up.Step() != SQLITE_DONE) return Err("update device");
    if (sqlite3_changes(db_) == 0) {
      // Revoked after the aggregator read the device: nothing of this report may be stored.
      // Overtaken by a newer sequence (another writer): the row stays as history.
      Status why = NotFoundOrRevoked(d.id);
      if (why.code() == Status::Code::kNotFound || Revoked(d.id)) return why;
      return Status::Ok();
    }
    return Status::Ok();
  }

  static constexpr const char* kSinkColumns =
      "name, delivered_id, attempts, next_attempt_ms, last_error, failed, owner, lease_until_ms";

  static SinkCursor ReadSink(Stmt& st) {
    SinkCursor c;
    c.sink = st.Text(0);
    c.delivered_id = static_cast<uint64_t>(st.Int(1));
    c.attempts = static_cast<uint32_t>(st.Int(2));
    c.next_attempt_ms = st.Int(3);
    c.last_error = st.Text(4);
    c.failed = static_cast<uint64_t>(st.Int(5));
    c.owner = st.Text(6);
    c.lease_until_ms = st.Int(7);
    return c;
  }

  static constexpr const char* kCredentialColumns =
      "kind, id, name, role, hash, created_at_ms, expires_at_ms, revoked_at_ms";

  static CredentialRecord ReadCredential(Stmt& st) {
    CredentialRecord c;
    c.kind = static_cast<CredentialKind>(st.Int(0));
    c.id = st.Text(1);
    c.name = st.Text(2);
    c.role = static_cast<int>(st.Int(3));
    c.hash = st.Blob(4);
    c.created_at_ms = st.Int(5);
    c.expires_at_ms = st.Int(6);
    c.revoked_at_ms = st.Int(7);
    return c;
  }

  // One write transaction under mu_: runs `body`, appends `audit` when given, commits; rolls
  // back on any failure, so a change is never stored without its audit entry or vice versa.
  template <typename Body>
  Status WriteTx(Body body, const AuditRecord* audit) {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    if (Status s = body(); !s.ok()) return Rollback(s);
    if (audit != nullptr) {
      if (Status s = Audit(*audit); !s.ok()) return Rollback(s);
    }
    return Commit();
  }

  bool Revoked(const std::string& device_id) {
    Stmt st(w_, "SELECT revoked_at_ms FROM devices WHERE id=?");
    st.Bind(1, device_id);
    return st.Step() == SQLITE_ROW && st.Int(0) != 0;
  }

  // After an UPDATE guarded by revoked_at_ms=0 changed nothing (caller holds mu_).
  Status NotFoundOrRevoked(const std::string& device_id) {
    Stmt st(w_, "SELECT revoked_at_ms FROM devices WHERE id=?");
    st.Bind(1, device_id);
    if (st.Step() != SQLITE_ROW) return Status::NotFound("no device '" + device_id + "'");
    return Status::FailedPrecondition("device " + device_id + " is revoked");
  }

  // Appends one chained entry; the caller holds mu_ and an open write transaction, so the read
  // of the previous hash and the insert cannot interleave with another writer.
  Status Audit(const AuditRecord& r) {
    Stmt last(w_, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1");
    v1::AuditEntry e;
    int rc = last.Step();
    if (rc == SQLITE_ROW) {
      e.set_id(static_cast<uint64_t>(last.Int(0)) + 1);
      e.set_prev_hash(last.Blob(1));
    } else if (rc == SQLITE_DONE) {
      e.set_id(1);
      e.set_prev_hash(std::string(audit::kHashSize, '\0'));
    } else {
      return Err("read audit head");
    }
    e.set_at_ms(r.at_ms);
    e.set_actor(r.actor);
    e.set_action(r.action);
    e.set_target(r.target);
    e.set_detail(r.detail);
    e.set_success(r.success);
    e.set_hash(audit::EntryHash(e));
    Stmt ins(w_,
             "INSERT INTO audit(id, at_ms, actor, action, target, detail, success, prev_hash, "
             "hash) VALUES(?,?,?,?,?,?,?,?,?)");
    ins.Bind(1, static_cast<int64_t>(e.id()));
    ins.Bind(2, e.at_ms());
    ins.Bind(3, e.actor());
    ins.Bind(4, e.action());
    ins.Bind(5, e.target());
    ins.Bind(6, e.detail());
    ins.Bind(7, static_cast<int64_t>(e.success() ? 1 : 0));
    ins.BindBlob(8, e.prev_hash());
    ins.BindBlob(9, e.hash());
    if (ins.Step() != SQLITE_DONE) return Err("append audit entry");
    return Status::Ok();
  }

  // Appends one alert inside the caller's write transaction; `id` gets its id.
  Status AddAlert(const AlertRecord& a, uint64_t* id) {
    Stmt ins(w_,
             "INSERT INTO alerts(kind, device_id, hostname, status, previous, at_ms, "
             "reason, failing_checks) VALUES(?,?,?,?,?,?,?,?)");
    ins.Bind(1, a.kind);
    ins.Bind(2, a.device_id);
    ins.Bind(3, a.hostname);
    ins.Bind(4, static_cast<int64_t>(a.status));
    ins.Bind(5, static_cast<int64_t>(a.previous));
    ins.Bind(6, a.at_ms);
    ins.Bind(7, a.reason);
    ins.Bind(8, store_sql::JoinChecks(a.failing_checks));
    if (ins.Step() != SQLITE_DONE) return Err("insert alert");
    *id = static_cast<uint64_t>(sqlite3_last_insert_rowid(db_));
    return Status::Ok();
  }

  // Replaces change `c` if its state is still `from`, inside the caller's write transaction.
  Status CasChange(const v1::PolicyChange& c, v1::PolicyChangeState from) {
    Stmt up(w_, "UPDATE policy_changes SET state=?, body=? WHERE id=? AND state=?");
    up.Bind(1, static_cast<int64_t>(c.state()));
    up.BindBlob(2, store_sql::ChangeBody(c));
    up.Bind(3, static_cast<int64_t>(c.id()));
    up.Bind(4, static_cast<int64_t>(from));
    if (up.Step() != SQLITE_DONE) return Err("update policy change");
    if (sqlite3_changes(db_) != 0) return Status::Ok();
    Stmt now(w_, "SELECT state FROM policy_changes WHERE id=?");
    now.Bind(1, static_cast<int64_t>(c.id()));
    int rc = now.Step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Err("read policy change");
    std::optional<std::string> state;
    if (rc == SQLITE_ROW) {
      state = v1::PolicyChangeState_Name(static_cast<v1::PolicyChangeState>(now.Int(0)));
    }
    return store_sql::StateMoved("policy change", c.id(), state, v1::PolicyChangeState_Name(from));
  }

  static constexpr const char* kVersionColumns =
      "number, change_id, set_version, body, applied_at_ms, applied_by";

  static Result<std::optional<PolicyVersionRecord>> OneVersion(Stmt& st, int rc) {
    if (rc == SQLITE_DONE) return std::optional<PolicyVersionRecord>();
    PolicyVersionRecord v;
    v.number = static_cast<uint64_t>(st.Int(0));
    v.change_id = static_cast<uint64_t>(st.Int(1));
    v.set_version = st.Text(2);
    if (!v.set.ParseFromString(st.Blob(3))) {
      return Status::IoError("stored policy version " + std::to_string(v.number) +
                             " does not parse");
    }
    v.applied_at_ms = st.Int(4);
    v.applied_by = st.Text(5);
    return std::optional<PolicyVersionRecord>(std::move(v));
  }

  Status AddEvent(const std::string& device_id, int64_t at_ms, const std::string& kind,
                  const std::string& detail) {
    Stmt st(w_, "INSERT INTO events(device_id, at_ms, kind, detail) VALUES(?,?,?,?)");
    st.Bind(1, device_id);
    st.Bind(2, at_ms);
    st.Bind(3, kind);
    st.Bind(4, detail);
    if (st.Step() != SQLITE_DONE) return Err("insert event");
    return Status::Ok();
  }

  Result<std::optional<DeviceRecord>> OneDevice(Stmt& st) {
    int rc = st.Step();
    if (rc == SQLITE_ROW) return std::optional<DeviceRecord>(ReadDevice(st));
    if (rc == SQLITE_DONE) return std::optional<DeviceRecord>();
    return RErr("read device");
  }

  Status Exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return Status::IoError(std::string("sqlite: ") + m);
    }
    return Status::Ok();
  }

  // A failed COMMIT can leave the transaction open; roll it back so the connection neither keeps
  // uncommitted rows visible nor refuses the next BEGIN.
  Status Commit() {
    Status s = Exec("COMMIT");
    if (!s.ok() && !sqlite3_get_autocommit(db_)) Exec("ROLLBACK");
    return s;
  }

  Status Rollback(Status s) {
    Exec("ROLLBACK");
    return s;
  }

  Status Err(const char* what) {
    return Status::IoError(std::string("sqlite ") + what + ": " + sqlite3_errmsg(db_));
  }
  Status RErr(const char* what) {
    return Status::IoError(std::string("sqlite ") + what + ": " + sqlite3_errmsg(rdb_));
  }

  std::mutex mu_;  // the write connection
  sqlite3* db_;
  sqlite3* rdb_;
  std::mutex own_rmu_;
  std::mutex* rmu_;             // the read connection's
  StmtCache w_;                 // statements of db_
  StmtCache own_r_;             // statements of the second connection, when there is one
  StmtCache* r_;                // statements of rdb_
  sqlite3* ckpt_db_ = nullptr;  // the checkpointer's connection
  std::thread ckpt_thread_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
};

// One connection to `path`; each is used by one thread at a time under the store's locks.
Result<sqlite3*> OpenConnection(const std::string& path, int flags, const char* purpose) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status::IoError("cannot open database " + path + purpose + ": " + m);
  }
  return db;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  auto db = OpenConnection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "");
  if (!db.ok()) return db.status();
  // The schema first, on the write connection; then the reader and the checkpointer's (not for
  // in-memory databases, where another connection would be another database).
  auto store = std::make_unique<SqliteStore>(*db, nullptr);
  if (Status s = store->Init(); !s.ok()) return s;
  if (path != ":memory:") {
    auto reader = OpenConnection(path, SQLITE_OPEN_READWRITE, " for reading");
    if (!reader.ok()) return reader.status();
    if (Status s = store->AttachReader(*reader); !s.ok()) return s;
    auto ckpt = OpenConnection(path, SQLITE_OPEN_READWRITE, " for checkpoints");
    if (!ckpt.ok()) return ckpt.status();
    store->StartCheckpointer(*ckpt);
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vigil::server

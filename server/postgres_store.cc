#include "server/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "proto/audit_chain.h"
#include "server/store_sql.h"

namespace vigil::server {
namespace {

// Advisory lock keys (any two fixed numbers the database's other users do not take): one for
// schema creation at start-up, one held by each transaction that appends to the audit chain.
constexpr int64_t kSchemaLockKey = 0x5649474c00000001;  // "VIGL" 1
constexpr int64_t kAuditLockKey = 0x5649474c00000002;   // "VIGL" 2
// Held from an alert's insert to its commit, so alert ids commit in id order: a dispatcher that
// has read up to id N never finds a smaller id committed after it (a sequence alone hands out
// ids at insert time, and a slower transaction could commit a smaller one later).
constexpr int64_t kAlertLockKey = 0x5649474c00000003;  // "VIGL" 3
// Held by ApplyPolicyVersion from its read of the current version number to its commit, so two
// replicas applying at once cannot both find the same number current (the primary key on the
// number is the backstop).
constexpr int64_t kPolicyLockKey = 0x5649474c00000004;  // "VIGL" 4

// PostgreSQL 11 added EXECUTE FUNCTION for triggers.
constexpr int kMinServerVersion = 110000;

// The SQLite schema translated: BYTEA for blobs, BIGINT for times and sequences, the same
// integer codes for statuses and flags. TEXT columns compare and sort bytewise (COLLATE "C"), as
// SQLite's BINARY collation does, whatever the database's locale.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS devices(
  id TEXT COLLATE "C" PRIMARY KEY,
  key_id BYTEA NOT NULL UNIQUE,
  public_key BYTEA NOT NULL,
  hostname TEXT COLLATE "C" NOT NULL DEFAULT '',
  os TEXT COLLATE "C" NOT NULL DEFAULT '',
  platform BYTEA,
  enrolled_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL DEFAULT 0,
  last_sequence BIGINT NOT NULL DEFAULT 0,
  status INTEGER NOT NULL,
  status_reason TEXT COLLATE "C" NOT NULL DEFAULT '',
  failing_checks TEXT COLLATE "C" NOT NULL DEFAULT ',',
  tampered INTEGER NOT NULL DEFAULT 0,
  tamper_reason TEXT COLLATE "C" NOT NULL DEFAULT '',
  policy_version TEXT COLLATE "C" NOT NULL DEFAULT '',
  latest BYTEA,
  pending INTEGER NOT NULL DEFAULT 0,
  revoked_at_ms BIGINT NOT NULL DEFAULT 0,
  revoke_reason TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS attestations(
  device_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  digest BYTEA NOT NULL,
  issued_at_ms BIGINT NOT NULL,
  received_at_ms BIGINT NOT NULL,
  status INTEGER NOT NULL,
  failing_checks TEXT COLLATE "C" NOT NULL,
  envelope BYTEA NOT NULL,
  live INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY(device_id, sequence)
);
CREATE TABLE IF NOT EXISTS events(
  id BIGSERIAL PRIMARY KEY,
  device_id TEXT COLLATE "C" NOT NULL,
  at_ms BIGINT NOT NULL,
  kind TEXT COLLATE "C" NOT NULL,
  detail TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS events_device ON events(device_id, id);
CREATE TABLE IF NOT EXISTS credentials(
  kind INTEGER NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  role INTEGER NOT NULL DEFAULT 0,
  hash BYTEA NOT NULL,
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL DEFAULT 0,
  revoked_at_ms BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY(kind, id),
  UNIQUE(kind, name)
);
-- Ids are assigned by the store (head + 1 under the audit advisory lock), never by a sequence,
-- so the ids of the chain have no gaps.
CREATE TABLE IF NOT EXISTS audit(
  id BIGINT PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  action TEXT COLLATE "C" NOT NULL,
  target TEXT COLLATE "C" NOT NULL,
  detail TEXT COLLATE "C" NOT NULL,
  success INTEGER NOT NULL,
  prev_hash BYTEA NOT NULL,
  hash BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs(
  name TEXT COLLATE "C" PRIMARY KEY,
  last_run_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS attestations_received ON attestations(received_at_ms);
-- Policy change requests, applied versions and exceptions (store.h). The message is the body;
-- the id and the state, its compare-and-swap guard, are columns (store_sql.h).
CREATE TABLE IF NOT EXISTS policy_changes(
  id BIGSERIAL PRIMARY KEY,
  state INTEGER NOT NULL,
  body BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_versions(
  number BIGINT PRIMARY KEY,
  change_id BIGINT NOT NULL,
  set_version TEXT COLLATE "C" NOT NULL,
  body BYTEA NOT NULL,
  applied_at_ms BIGINT NOT NULL,
  applied_by TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_exceptions(
  id BIGSERIAL PRIMARY KEY,
  state INTEGER NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  body BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_exceptions_state ON policy_exceptions(state, id);
-- Append-only for the servers' own role; the hash chain catches edits made around it.
CREATE OR REPLACE FUNCTION vigil_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                 WHERE tgrelid = 'audit'::regclass AND tgname = 'audit_no_update_delete') THEN
    CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
      FOR EACH ROW EXECUTE FUNCTION vigil_audit_append_only();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                 WHERE tgrelid = 'audit'::regclass AND tgname = 'audit_no_truncate') THEN
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
      FOR EACH STATEMENT EXECUTE FUNCTION vigil_audit_append_only();
  END IF;
END
$$;
)sql";

// True when every table and trigger of kSchema exists, so a role without CREATE privilege can
// run against a database an administrator prepared.
constexpr const char* kSchemaPresent = R"sql(
SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()
          AND tablename IN ('devices', 'attestations', 'events', 'credentials', 'audit',
                            'jobs', 'status_counts', 'alerts', 'alert_sinks', 'meta',
                            'policy_changes', 'policy_versions', 'policy_exceptions')) = 13
   AND (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('audit')
          AND tgname IN ('audit_no_update_delete', 'audit_no_truncate')) = 2
   AND (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('devices')
          AND tgname IN ('devices_count', 'devices_alert')) = 2
   AND to_regclass('devices_status') IS NULL
)sql";

// Devices per status bucket (store_sql::Bucket), kept current by a trigger in the transaction
// that changes a device. The trigger comes before the first count: creating it locks the table
// against writes, so no change falls between the two. Counter rows change only when a device
// changes bucket; two replicas flipping devices in opposite directions at once can deadlock on
// them, which PostgreSQL breaks by failing one group, and the group committer then retries its
// attestations one by one.
std::string CountingSchema() {
  return R"sql(
DO $$
DECLARE
  fresh BOOLEAN := to_regclass('status_counts') IS NULL;
BEGIN
  IF fresh THEN
    CREATE TABLE status_counts(bucket INTEGER PRIMARY KEY, n BIGINT NOT NULL);
  END IF;
  CREATE OR REPLACE FUNCTION vigil_count_devices() RETURNS trigger LANGUAGE plpgsql AS $f$
  DECLARE
    o INTEGER;
    nw INTEGER;
  BEGIN
    IF TG_OP <> 'INSERT' THEN o := )sql" +
         store_sql::Bucket("OLD") + R"sql(; END IF;
    IF TG_OP <> 'DELETE' THEN nw := )sql" +
         store_sql::Bucket("NEW") + R"sql(; END IF;
    IF o IS NOT DISTINCT FROM nw THEN RETURN NULL; END IF;
    IF o IS NOT NULL THEN UPDATE status_counts SET n = n - 1 WHERE bucket = o; END IF;
    IF nw IS NOT NULL THEN
      INSERT INTO status_counts(bucket, n) VALUES (nw, 1)
        ON CONFLICT (bucket) DO UPDATE SET n = status_counts.n + 1;
    END IF;
    RETURN NULL;
  END;
  $f$;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                 WHERE tgrelid = 'devices'::regclass AND tgname = 'devices_count') THEN
    CREATE TRIGGER devices_count AFTER INSERT OR UPDATE OR DELETE ON devices
      FOR EACH ROW EXECUTE FUNCTION vigil_count_devices();
  END IF;
  IF fresh THEN
    INSERT INTO status_counts(bucket, n) SELECT )sql" +
         store_sql::Bucket("") + R"sql(, COUNT(*) FROM devices GROUP BY 1;
  END IF;
END
$$;
)sql";
}

// The alert outbox and the trigger that fills it (store_sql.h), and device tags. Columns added
// to a database from before them start from what was already announced.
std::string AlertSchema() {
  return R"sql(
ALTER TABLE devices ADD COLUMN IF NOT EXISTS tags TEXT COLLATE "C" NOT NULL DEFAULT ',';
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                 AND table_name = 'devices' AND column_name = 'alert_state') THEN
    ALTER TABLE devices ADD COLUMN alert_state INTEGER NOT NULL DEFAULT 0;
    UPDATE devices SET alert_state = CASE WHEN revoked_at_ms<>0 THEN 8 WHEN tampered<>0 THEN 5
                                          WHEN status IN (1, 2) THEN status ELSE 0 END;
  END IF;
END
$$;
CREATE TABLE IF NOT EXISTS alerts(
  id BIGSERIAL PRIMARY KEY,
  kind TEXT COLLATE "C" NOT NULL,
  device_id TEXT COLLATE "C" NOT NULL,
  hostname TEXT COLLATE "C" NOT NULL,
  status INTEGER NOT NULL,
  previous INTEGER NOT NULL,
  at_ms BIGINT NOT NULL,
  reason TEXT COLLATE "C" NOT NULL,
  failing_checks TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts(device_id, id);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action, at_ms);
CREATE TABLE IF NOT EXISTS meta(key TEXT COLLATE "C" PRIMARY KEY, value TEXT COLLATE "C" NOT NULL);
INSERT INTO meta(key, value)
  VALUES ('instance', substr(md5(random()::text || clock_timestamp()::text), 1, 16))
  ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS alert_sinks(
  name TEXT COLLATE "C" PRIMARY KEY,
  delivered_id BIGINT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms BIGINT NOT NULL DEFAULT 0,
  last_error TEXT COLLATE "C" NOT NULL DEFAULT '',
  failed BIGINT NOT NULL DEFAULT 0,
  owner TEXT COLLATE "C" NOT NULL DEFAULT '',
  lease_until_ms BIGINT NOT NULL DEFAULT 0
);
CREATE OR REPLACE FUNCTION vigil_device_alert() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  s INTEGER;
BEGIN
  s := )sql" +
         store_sql::AlertState() +
         R"sql(;
  IF s = OLD.alert_state THEN RETURN NEW; END IF;
  IF )sql" +
         store_sql::AlertRaised("s") +
         R"sql( THEN
    PERFORM pg_advisory_xact_lock()sql" +
         std::to_string(kAlertLockKey) +
         R"sql();
    INSERT INTO alerts(kind, device_id, hostname, status, previous, at_ms, reason, failing_checks)
      VALUES ()sql" +
         store_sql::AlertKind("s") + ", NEW.id, NEW.hostname, s, OLD.alert_state, " +
         store_sql::AlertAt("(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT") + ", " +
         store_sql::AlertReason("s") + R"sql(, NEW.failing_checks);
  END IF;
  NEW.alert_state := s;
  RETURN NEW;
END;
$f$;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                 WHERE tgrelid = 'devices'::regclass AND tgname = 'devices_alert') THEN
    CREATE TRIGGER devices_alert BEFORE UPDATE OF )sql" +
         store_sql::kAlertWatched + R"sql( ON devices
      FOR EACH ROW EXECUTE FUNCTION vigil_device_alert();
  END IF;
END
$$;
)sql";
}

constexpr const char* kUniqueViolation = "23505";

// Connections per server: one writer (every transaction, including the group commits) and this
// many readers.
constexpr int kReaders = 3;

// Type OIDs of the parameters we send (from pg_type; stable across releases).
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaOid = 17;

// Query parameters, always bound (never spliced into SQL). Text and bytes travel in binary
// format, so their length is explicit and the server rejects, rather than truncates, a string it
// cannot store; integers travel as decimal text typed int8.
class Params {
 public:
  Params& Text(const std::string& s) { return Add(s, kTextOid, 1); }
  Params& Bytes(const std::string& s) { return Add(s, kByteaOid, 1); }
  Params& Int(int64_t v) { return Add(std::to_string(v), kInt8Oid, 0); }

  int size() const { return static_cast<int>(values_.size()); }
  const Oid* types() const { return types_.data(); }
  const int* formats() const { return formats_.data(); }
  // Pointers and lengths into values_; valid while this object is unchanged.
  std::vector<const char*> pointers() const {
    std::vector<const char*> p;
    for (const auto& v : values_) p.push_back(v.c_str());
    return p;
  }
  std::vector<int> lengths() const {
    std::vector<int> l;
    for (const auto& v : values_) l.push_back(static_cast<int>(v.size()));
    return l;
  }

 private:
  Params& Add(std::string v, Oid type, int format) {
    values_.push_back(std::move(v));
    types_.push_back(type);
    formats_.push_back(format);
    return *this;
  }
  std::vector<std::string> values_;
  std::vector<Oid> types_;
  std::vector<int> formats_;
};

// One statement's outcome: a Status (OK or the mapped failure), the SQLSTATE when the server
// reported one, and the rows (binary format) when it succeeded.
class Reply {
 public:
  Reply() = default;
  Reply(PGresult* r, Status s, std::string sqlstate)
      : r_(r, &PQclear), status_(std::move(s)), sqlstate_(std::move(sqlstate)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  const std::string& sqlstate() const { return sqlstate_; }
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  int64_t affected() const { return r_ ? std::atoll(PQcmdTuples(r_.get())) : 0; }
  const char* command() const { return r_ ? PQcmdStatus(r_.get()) : ""; }

  // TEXT or BYTEA column; NULL reads as empty.
  std::string Str(int row, int col) const {
    if (PQgetisnull(r_.get(), row, col)) return std::string();
    return std::string(PQgetvalue(r_.get(), row, col),
                       static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  // Integer column of any width (binary format is big-endian); NULL reads as 0.
  int64_t Int(int row, int col) const {
    if (PQgetisnull(r_.get(), row, col)) return 0;
    const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col));
    int len = PQgetlength(r_.get(), row, col);
    uint64_t v = 0;
    for (int i = 0; i < len; ++i) v = (v << 8) | p[i];
    if (len > 0 && len < 8 && (p[0] & 0x80)) v |= ~uint64_t{0} << (8 * len);  // sign-extend
    return static_cast<int64_t>(v);
  }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_{nullptr, &PQclear};
  Status status_;
  std::string sqlstate_;
};

constexpr const char* kDeviceColumns =
    "id, key_id, public_key, hostname, platform, enrolled_at_ms, last_seen_ms, last_sequence, "
    "status, status_reason, failing_checks, tampered, tamper_reason, policy_version, latest, "
    "pending, revoked_at_ms, revoke_reason, tags";
// The same columns without the latest attestation, which listings do not return.
constexpr const char* kDeviceListColumns =
    "id, key_id, public_key, hostname, platform, enrolled_at_ms, last_seen_ms, last_sequence, "
    "status, status_reason, failing_checks, tampered, tamper_reason, policy_version, NULL, "
    "pending, revoked_at_ms, revoke_reason, tags";

DeviceRecord ReadDevice(const Reply& r, int row) {
  DeviceRecord d;
  d.id = r.Str(row, 0);
  d.key_id = r.Str(row, 1);
  d.public_key = r.Str(row, 2);
  d.hostname = r.Str(row, 3);
  d.platform.ParseFromString(r.Str(row, 4));
  d.enrolled_at_ms = r.Int(row, 5);
  d.last_seen_ms = r.Int(row, 6);
  d.last_sequence = static_cast<uint64_t>(r.Int(row, 7));
  d.status = static_cast<v1::DeviceStatus>(r.Int(row, 8));
  d.status_reason = r.Str(row, 9);
  d.failing_checks = store_sql::SplitChecks(r.Str(row, 10));
  d.tampered = r.Int(row, 11) != 0;
  d.tamper_reason = r.Str(row, 12);
  d.policy_version = r.Str(row, 13);
  d.latest_attestation = r.Str(row, 14);
  d.pending = r.Int(row, 15) != 0;
  d.revoked_at_ms = r.Int(row, 16);
  d.revoke_reason = r.Str(row, 17);
  d.tags = store_sql::SplitChecks(r.Str(row, 18));
  return d;
}

constexpr const char* kCredentialColumns =
    "kind, id, name, role, hash, created_at_ms, expires_at_ms, revoked_at_ms";

constexpr const char* kSinkColumns =
    "name, delivered_id, attempts, next_attempt_ms, last_error, failed, owner, lease_until_ms";

SinkCursor ReadSink(const Reply& r, int row) {
  SinkCursor c;
  c.sink = r.Str(row, 0);
  c.delivered_id = static_cast<uint64_t>(r.Int(row, 1));
  c.attempts = static_cast<uint32_t>(r.Int(row, 2));
  c.next_attempt_ms = r.Int(row, 3);
  c.last_error = r.Str(row, 4);
  c.failed = static_cast<uint64_t>(r.Int(row, 5));
  c.owner = r.Str(row, 6);
  c.lease_until_ms = r.Int(row, 7);
  return c;
}

CredentialRecord ReadCredential(const Reply& r, int row) {
  CredentialRecord c;
  c.kind = static_cast<CredentialKind>(r.Int(row, 0));
  c.id = r.Str(row, 1);
  c.name = r.Str(row, 2);
  c.role = static_cast<int>(r.Int(row, 3));
  c.hash = r.Str(row, 4);
  c.created_at_ms = r.Int(row, 5);
  c.expires_at_ms = r.Int(row, 6);
  c.revoked_at_ms = r.Int(row, 7);
  return c;
}

// The connection the calling thread holds (set by PostgresStore::ConnLock for the duration of
// one store call), so the statement helpers need no connection argument.
thread_local PGconn* tl_conn = nullptr;

class PostgresStore final : public Store {
 public:
  // `writer` carries every transaction; `readers` serve reads in parallel with it, so a read
  // never waits for a group commit and its fsync (each sees the last committed state).
  PostgresStore(PGconn* writer, std::vector<PGconn*> readers) : writer_{writer} {
    for (PGconn* r : readers) readers_.push_back(std::make_unique<Pooled>(r));
  }
  ~PostgresStore() override {
    for (auto& r : readers_) PQfinish(r->pg);
    PQfinish(writer_.pg);
  }

  Status Init() {
    ConnLock lock(Writer());
    if (PQserverVersion(tl_conn) < kMinServerVersion) {
      return Status::FailedPrecondition("PostgreSQL " + std::to_string(kMinServerVersion / 10000) +
                                        " or newer is required");
    }
    Reply present = Exec("check schema", kSchemaPresent, Params());
    if (!present.ok()) return present.status();
    if (present.rows() == 1 && present.Int(0, 0) != 0) return Status::Ok();
    // Replicas starting together: the first creates the schema, the others wait on the lock and
    // then find everything in place. DDL is transactional, so a failure leaves nothing behind.
    if (Status s = Begin(); !s.ok()) return s;
    if (Reply r =
            Exec("lock schema", "SELECT pg_advisory_xact_lock($1)", Params().Int(kSchemaLockKey));
        !r.ok()) {
      return Rollback(r.status());
    }
    PGresult* raw = PQexec(tl_conn, (kSchema + std::string(store_sql::kDeviceIndexes) +
                                     CountingSchema() + AlertSchema())
                                        .c_str());
    if (Reply r = Check("create schema", raw); !r.ok()) return Rollback(r.status());
    return Commit();
  }

  Status InsertDevice(const DeviceRecord& d, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("insert device",
                         "INSERT INTO devices(id, key_id, public_key, hostname, os, platform, "
                         "enrolled_at_ms, status, pending) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                         Params()
                             .Text(d.id)
                             .Bytes(d.key_id)
                             .Bytes(d.public_key)
                             .Text(d.hostname)
                             .Text(d.platform.os())
                             .Bytes(d.platform.SerializeAsString())
                             .Int(d.enrolled_at_ms)
                             .Int(static_cast<int64_t>(d.status))
                             .Int(d.pending ? 1 : 0));
          if (r.sqlstate() == kUniqueViolation)
            return Status::AlreadyExists("device or key already enrolled");
          if (!r.ok()) return r.status();
          return AddEvent(d.id, d.enrolled_at_ms, "enrolled",
                          "key " + store_sql::HexPrefix(d.key_id) + " from host '" + d.hostname +
                              "'" + (d.pending ? "; pending approval" : ""));
        },
        &audit);
  }

  Status ApproveDevice(const std::string& device_id, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Reply r =
              Exec("approve device", "UPDATE devices SET pending=0 WHERE id=$1 AND revoked_at_ms=0",
                   Params().Text(device_id));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) return NotFoundOrRevoked(device_id);
          return AddEvent(device_id, audit.at_ms, "approved", "by " + audit.actor);
        },
        &audit);
  }

  Status RevokeDevice(const std::string& device_id, const std::string& reason, int64_t at_ms,
                      const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("revoke device",
                         "UPDATE devices SET revoked_at_ms=CASE WHEN revoked_at_ms=0 THEN $1 ELSE "
                         "revoked_at_ms END, revoke_reason=CASE WHEN revoked_at_ms=0 THEN $2 ELSE "
                         "revoke_reason END WHERE id=$3",
                         Params().Int(at_ms).Text(reason).Text(device_id));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) return Status::NotFound("no device '" + device_id + "'");
          return AddEvent(device_id, at_ms, "revoked", reason + " (by " + audit.actor + ")");
        },
        &audit);
  }

  Status ReplaceDeviceKey(const std::string& device_id, const std::string& old_key_id,
                          const std::string& new_public_key, const std::string& new_key_id,
                          int64_t at_ms, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          // Under READ COMMITTED a concurrent change to the row makes the UPDATE re-check
          // key_id against the committed version, so this is a compare-and-swap across replicas.
          Reply r = Exec(
              "replace device key",
              "UPDATE devices SET key_id=$1, public_key=$2 WHERE id=$3 AND key_id=$4",
              Params().Bytes(new_key_id).Bytes(new_public_key).Text(device_id).Bytes(old_key_id));
          if (r.sqlstate() == kUniqueViolation)
            return Status::AlreadyExists("the new key is already enrolled");
          if (!r.ok()) return r.status();
          if (r.affected() == 0) {
            return Status::FailedPrecondition("the device key changed since it was read");
          }
          return AddEvent(device_id, at_ms, "key-rotated",
                          "key " + store_sql::HexPrefix(old_key_id) + " replaced by " +
                              store_sql::HexPrefix(new_key_id));
        },
        &audit);
  }

  Result<std::optional<DeviceRecord>> FindDeviceByKeyId(const std::string& key_id) override {
    ConnLock lock(Reader());
    return OneDevice(
        ExecFromIdle("read device",
                     std::string("SELECT ") + kDeviceListColumns + " FROM devices WHERE key_id=$1",
                     Params().Bytes(key_id)));
  }

  Result<std::optional<DeviceRecord>> GetDevice(const std::string& id) override {
    ConnLock lock(Reader());
    return OneDevice(ExecFromIdle(
        "read device", std::string("SELECT ") + kDeviceColumns + " FROM devices WHERE id=$1",
        Params().Text(id)));
  }

  Result<std::optional<std::string>> AttestationDigest(const std::string& device_id,
                                                       uint64_t sequence) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle("read attestation digest",
                           "SELECT digest FROM attestations WHERE device_id=$1 AND sequence=$2",
                           Params().Text(device_id).Int(static_cast<int64_t>(sequence)));
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return std::optional<std::string>();
    return std::optional<std::string>(r.Str(0, 0));
  }

  Status CommitAttestation(const AcceptedAttestation& a) override {
    return WriteTx([&] { return CommitOne(a); }, nullptr);
  }

  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    return WriteTx([&] { return CommitPipelined(batch); }, nullptr);
  }

  Status UpdateVerdicts(const std::vector<DeviceRecord>& devices) override {
    return WriteTx(
        [&]() -> Status {
          for (const DeviceRecord& d : devices) {
            Reply r = Exec("update verdict",
                           "UPDATE devices SET status=$1, status_reason=$2, failing_checks=$3, "
                           "policy_version=$4, latest=$5 WHERE id=$6 AND last_sequence=$7",
                           Params()
                               .Int(static_cast<int64_t>(d.status))
                               .Text(d.status_reason)
                               .Text(store_sql::JoinChecks(d.failing_checks))
                               .Text(d.policy_version)
                               .Bytes(d.latest_attestation)
                               .Text(d.id)
                               .Int(static_cast<int64_t>(d.last_sequence)));
            if (!r.ok()) return r.status();
          }
          return Status::Ok();
        },
        nullptr);
  }

  Status MarkTampered(const std::string& device_id, const std::string& reason, int64_t at_ms,
                      const AuditRecord& audit) override {
    // The first reason is kept; repeats (a flood of forgeries naming the device) are counted by
    // the caller but add no rows. Two replicas flagging at once: the row lock makes the second
    // UPDATE re-check tampered=0 and change nothing.
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("mark tampered",
                         "UPDATE devices SET tampered=1, tamper_reason=$1 WHERE id=$2 AND "
                         "tampered=0",
                         Params().Text(reason).Text(device_id));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) return Status::Ok();
          if (Status s = AddEvent(device_id, at_ms, "tampered", reason); !s.ok()) return s;
          return Audit(audit);
        },
        nullptr);
  }

  Result<std::vector<DeviceRecord>> ListDevices(const DeviceFilter& f) override {
    std::string sql = std::string("SELECT ") + kDeviceListColumns + " FROM devices WHERE id > $1";
    sql += store_sql::StatusFilter(f.status, '$');
    // Exact, case-sensitive match of one whole id inside ",a,b," (LIKE would treat % and _ as
    // wildcards).
    if (!f.failing_check.empty()) sql += " AND strpos(failing_checks, $4) > 0";
    if (!f.os.empty()) sql += " AND os=$5";
    if (!f.tag.empty()) sql += " AND strpos(tags, $7) > 0";
    if (f.not_seen_since_ms != 0) sql += " AND last_seen_ms < $8";
    sql += " ORDER BY id LIMIT $6";
    ConnLock lock(Reader());
    Reply r = ExecFromIdle("list devices", sql,
                           Params()
                               .Text(f.after_id)
                               .Int(f.stale_before_ms)
                               .Int(static_cast<int64_t>(f.status))
                               .Text("," + f.failing_check + ",")
                               .Text(f.os)
                               .Int(static_cast<int64_t>(f.limit))
                               .Text("," + f.tag + ",")
                               .Int(f.not_seen_since_ms));
    if (!r.ok()) return r.status();
    std::vector<DeviceRecord> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadDevice(r, i));
    return out;
  }

  Result<std::vector<HistoryRow>> History(const std::string& device_id, uint32_t limit) override {
    return HistoryRange(device_id, 0, 0, 0, limit);
  }

  Result<std::vector<EventRow>> Events(const std::string& device_id, uint32_t limit) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "read events",
        "SELECT at_ms, kind, detail FROM events WHERE device_id=$1 ORDER BY id DESC LIMIT $2",
        Params().Text(device_id).Int(limit));
    if (!r.ok()) return r.status();
    std::vector<EventRow> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back({r.Int(i, 0), r.Str(i, 1), r.Str(i, 2)});
    return out;
  }

  Result<std::vector<std::pair<v1::DeviceStatus, uint64_t>>> CountByStatus(
      int64_t stale_before_ms) override {
    ConnLock lock(Reader());
    Reply r =
        ExecFromIdle("count devices", store_sql::CountsQuery('$'), Params().Int(stale_before_ms));
    if (!r.ok()) return r.status();
    std::vector<std::pair<int64_t, int64_t>> rows;
    for (int i = 0; i < r.rows(); ++i) rows.emplace_back(r.Int(i, 0), r.Int(i, 1));
    return store_sql::CountsFromRows(rows);
  }

  Status InsertCredential(const CredentialRecord& c, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("insert credential",
                         "INSERT INTO credentials(kind, id, name, role, hash, created_at_ms, "
                         "expires_at_ms) VALUES($1,$2,$3,$4,$5,$6,$7)",
                         Params()
                             .Int(static_cast<int64_t>(c.kind))
                             .Text(c.id)
                             .Text(c.name)
                             .Int(c.role)
                             .Bytes(c.hash)
                             .Int(c.created_at_ms)
                             .Int(c.expires_at_ms));
          if (r.sqlstate() == kUniqueViolation) {
            return Status::AlreadyExists("a credential named '" + c.name + "' already exists");
          }
          return r.status();
        },
        &audit);
  }

  Result<std::optional<CredentialRecord>> FindCredential(CredentialKind kind,
                                                         const std::string& id) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "read credential",
        std::string("SELECT ") + kCredentialColumns + " FROM credentials WHERE kind=$1 AND id=$2",
        Params().Int(static_cast<int64_t>(kind)).Text(id));
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return std::optional<CredentialRecord>();
    return std::optional<CredentialRecord>(ReadCredential(r, 0));
  }

  Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle("list credentials",
                           std::string("SELECT ") + kCredentialColumns +
                               " FROM credentials WHERE kind=$1 ORDER BY created_at_ms, name",
                           Params().Int(static_cast<int64_t>(kind)));
    if (!r.ok()) return r.status();
    std::vector<CredentialRecord> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadCredential(r, i));
    return out;
  }

  Status RevokeCredential(CredentialKind kind, const std::string& id_or_name, int64_t at_ms,
                          const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("revoke credential",
                         "UPDATE credentials SET revoked_at_ms=$1 WHERE kind=$2 AND (id=$3 OR "
                         "name=$3) AND revoked_at_ms=0",
                         Params().Int(at_ms).Int(static_cast<int64_t>(kind)).Text(id_or_name));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) {
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
          Reply ins =
              Exec("insert job",
                   "INSERT INTO jobs(name, last_run_ms) VALUES($1, 0) ON CONFLICT DO NOTHING",
                   Params().Text(name));
          if (!ins.ok()) return ins.status();
          // One row update: concurrent replicas serialize on the row lock and the loser sees the
          // winner's last_run_ms, so it changes nothing.
          Reply up =
              Exec("claim job", "UPDATE jobs SET last_run_ms=$1 WHERE name=$2 AND last_run_ms<=$3",
                   Params().Int(now_ms).Text(name).Int(now_ms - period_ms));
          if (!up.ok()) return up.status();
          claimed = up.affected() > 0;
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
          Reply del =
              Exec("prune history",
                   "DELETE FROM attestations a USING devices d WHERE a.device_id = d.id AND "
                   "a.received_at_ms < $1 AND a.sequence < d.last_sequence",
                   Params().Int(before_ms));
          if (!del.ok()) return del.status();
          deleted = static_cast<uint64_t>(del.affected());
          // Alerts as old, once every sink in use within the period has delivered them (a sink
          // removed from the configuration holds nothing back for longer than that).
          Reply alerts = Exec("prune alerts",
                              "DELETE FROM alerts WHERE at_ms < $1 AND id <= (SELECT "
                              "COALESCE(MIN(delivered_id), 9223372036854775807) FROM alert_sinks "
                              "WHERE lease_until_ms >= $1)",
                              Params().Int(before_ms));
          if (!alerts.ok()) return alerts.status();
          return Status::Ok();
        },
        nullptr);
    if (!st.ok()) return st;
    return deleted;
  }

  Result<std::vector<HistoryRow>> HistoryRange(const std::string& device_id, int64_t since_ms,
                                               int64_t until_ms, uint64_t before_sequence,
                                               uint32_t limit) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "read history",
        "SELECT sequence, issued_at_ms, received_at_ms, status, failing_checks FROM attestations "
        "WHERE device_id=$1 AND sequence<$2 AND received_at_ms>=$3 AND received_at_ms<$4 "
        "ORDER BY sequence DESC LIMIT $5",
        Params()
            .Text(device_id)
            .Int(before_sequence ? static_cast<int64_t>(before_sequence) : INT64_MAX)
            .Int(since_ms)
            .Int(until_ms ? until_ms : INT64_MAX)
            .Int(limit));
    if (!r.ok()) return r.status();
    std::vector<HistoryRow> out;
    for (int i = 0; i < r.rows(); ++i) {
      HistoryRow h;
      h.sequence = static_cast<uint64_t>(r.Int(i, 0));
      h.issued_at_ms = r.Int(i, 1);
      h.received_at_ms = r.Int(i, 2);
      h.status = static_cast<v1::DeviceStatus>(r.Int(i, 3));
      h.failing_checks = store_sql::SplitChecks(r.Str(i, 4));
      out.push_back(std::move(h));
    }
    return out;
  }

  Result<std::vector<ExportRow>> ExportRows(const std::string& from_device, uint64_t after_sequence,
                                            int64_t since_ms, int64_t until_ms,
                                            uint32_t limit) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "export attestations",
        "SELECT device_id, sequence, issued_at_ms, received_at_ms, status, failing_checks, "
        "digest, envelope FROM attestations WHERE (device_id, sequence) > ($1, $2) AND "
        "received_at_ms>=$3 AND received_at_ms<$4 ORDER BY device_id, sequence LIMIT $5",
        Params()
            .Text(from_device)
            .Int(static_cast<int64_t>(after_sequence))
            .Int(since_ms)
            .Int(until_ms ? until_ms : INT64_MAX)
            .Int(limit));
    if (!r.ok()) return r.status();
    std::vector<ExportRow> out;
    for (int i = 0; i < r.rows(); ++i) {
      ExportRow e;
      e.device_id = r.Str(i, 0);
      e.sequence = static_cast<uint64_t>(r.Int(i, 1));
      e.issued_at_ms = r.Int(i, 2);
      e.received_at_ms = r.Int(i, 3);
      e.status = static_cast<v1::DeviceStatus>(r.Int(i, 4));
      e.failing_checks = store_sql::SplitChecks(r.Str(i, 5));
      e.digest = r.Str(i, 6);
      if (!e.envelope.ParseFromString(r.Str(i, 7))) {
        return Status::IoError("stored attestation " + e.device_id + "/" +
                               std::to_string(e.sequence) + " does not parse");
      }
      out.push_back(std::move(e));
    }
    return out;
  }

  Status SetDeviceTags(const std::string& device_id, const std::vector<std::string>& tags,
                       const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("set tags", "UPDATE devices SET tags=$1 WHERE id=$2",
                         Params().Text(store_sql::JoinChecks(tags)).Text(device_id));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) return Status::NotFound("no device '" + device_id + "'");
          return Status::Ok();
        },
        &audit);
  }

  Result<uint64_t> RaiseStaleAlerts(int64_t stale_before_ms, int64_t now_ms) override {
    uint64_t raised = 0;
    Status st = WriteTx(
        [&]() -> Status {
          if (Reply r = Exec("lock alerts", "SELECT pg_advisory_xact_lock($1)",
                             Params().Int(kAlertLockKey));
              !r.ok()) {
            return r.status();
          }
          // One statement: the devices marked are exactly those announced. Rows a report holds
          // are skipped, never waited for: that report's trigger waits for the alert lock this
          // transaction holds, so waiting here would deadlock; the device has just reported and
          // is not stale, or the next sweep finds it.
          std::string sql =
              "WITH s AS (UPDATE devices SET alert_state=4 WHERE id IN (SELECT id FROM devices "
              "WHERE alert_state IN " +
              std::string(store_sql::kVerdictAlertStates) +
              store_sql::StatusFilter(v1::STALE, '$') +
              " FOR UPDATE SKIP LOCKED) RETURNING id, hostname, status, failing_checks) "
              "INSERT INTO alerts(kind, device_id, hostname, status, previous, at_ms, reason, "
              "failing_checks) SELECT "
              "'device.stale', id, hostname, 4, status, $1, 'no attestation within the "
              "check-in window', failing_checks FROM s ORDER BY id";
          Reply r = Exec("raise stale alerts", sql, Params().Int(now_ms).Int(stale_before_ms));
          if (!r.ok()) return r.status();
          raised = static_cast<uint64_t>(r.affected());
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
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "list alerts",
        "SELECT id, kind, device_id, hostname, status, previous, at_ms, reason, failing_checks "
        "FROM alerts WHERE id>$1 AND ($3 = '' OR device_id=$3) ORDER BY id LIMIT $2",
        Params().Int(static_cast<int64_t>(after_id)).Int(limit).Text(device_id));
    if (!r.ok()) return r.status();
    std::vector<AlertRecord> out;
    for (int i = 0; i < r.rows(); ++i) {
      AlertRecord a;
      a.id = static_cast<uint64_t>(r.Int(i, 0));
      a.kind = r.Str(i, 1);
      a.device_id = r.Str(i, 2);
      a.hostname = r.Str(i, 3);
      a.status = static_cast<v1::DeviceStatus>(r.Int(i, 4));
      a.previous = static_cast<v1::DeviceStatus>(r.Int(i, 5));
      a.at_ms = r.Int(i, 6);
      a.reason = r.Str(i, 7);
      a.failing_checks = store_sql::SplitChecks(r.Str(i, 8));
      out.push_back(std::move(a));
    }
    return out;
  }

  Result<uint64_t> LastAlertId() override {
    ConnLock lock(Reader());
    // The sequence, not MAX(id): it survives pruning, as SQLite's AUTOINCREMENT record does.
    Reply r = ExecFromIdle("read last alert id",
                           "SELECT COALESCE(pg_sequence_last_value('alerts_id_seq'), 0)", Params());
    if (!r.ok()) return r.status();
    return static_cast<uint64_t>(r.Int(0, 0));
  }

  Result<std::string> InstanceId() override {
    ConnLock lock(Reader());
    Reply r =
        ExecFromIdle("read instance id", "SELECT value FROM meta WHERE key='instance'", Params());
    if (!r.ok()) return r.status();
    if (r.rows() != 1) return Status::IoError("postgres: no instance id in table meta");
    return r.Str(0, 0);
  }

  Result<std::optional<SinkCursor>> LeaseSink(const std::string& sink, const std::string& owner,
                                              int64_t now_ms, int64_t lease_ms) override {
    std::optional<SinkCursor> out;
    Status st = WriteTx(
        [&]() -> Status {
          Reply ins = Exec("add alert sink",
                           "INSERT INTO alert_sinks(name, delivered_id) SELECT $1, "
                           "COALESCE(pg_sequence_last_value('alerts_id_seq'), 0) "
                           "ON CONFLICT DO NOTHING",
                           Params().Text(sink));
          if (!ins.ok()) return ins.status();
          Reply up = Exec(
              "lease alert sink",
              std::string("UPDATE alert_sinks SET owner=$2, lease_until_ms=$3 WHERE name=$1 AND "
                          "(owner=$2 OR lease_until_ms<=$4) RETURNING ") +
                  kSinkColumns,
              Params().Text(sink).Text(owner).Int(now_ms + lease_ms).Int(now_ms));
          if (!up.ok()) return up.status();
          if (up.rows() == 1) out = ReadSink(up, 0);
          return Status::Ok();
        },
        nullptr);
    if (!st.ok()) return st;
    return out;
  }

  Status UpdateSink(const SinkCursor& c) override {
    return WriteTx(
        [&]() -> Status {
          Reply r = Exec("update alert sink",
                         "UPDATE alert_sinks SET delivered_id=$1, attempts=$2, next_attempt_ms=$3, "
                         "last_error=$4, failed=$5 WHERE name=$6 AND owner=$7 AND "
                         "lease_until_ms=$8",
                         Params()
                             .Int(static_cast<int64_t>(c.delivered_id))
                             .Int(c.attempts)
                             .Int(c.next_attempt_ms)
                             .Text(c.last_error)
                             .Int(static_cast<int64_t>(c.failed))
                             .Text(c.sink)
                             .Text(c.owner)
                             .Int(c.lease_until_ms));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) {
            return Status::FailedPrecondition("the lease on alert sink '" + c.sink + "' was lost");
          }
          return Status::Ok();
        },
        nullptr);
  }

  Result<std::vector<SinkCursor>> ListSinks() override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "list alert sinks",
        std::string("SELECT ") + kSinkColumns + " FROM alert_sinks ORDER BY name", Params());
    if (!r.ok()) return r.status();
    std::vector<SinkCursor> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadSink(r, i));
    return out;
  }

  Result<uint64_t> CountAuthFailures(const std::string& target_prefix, int64_t since_ms) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle(
        "count audit",
        "SELECT COUNT(*) FROM audit WHERE action='auth.failed' AND at_ms>=$2 AND success=0 "
        "AND substr(target, 1, length($1))=$1",
        Params().Text(target_prefix).Int(since_ms));
    if (!r.ok()) return r.status();
    return static_cast<uint64_t>(r.Int(0, 0));
  }

  Result<uint64_t> InsertPolicyChange(const v1::PolicyChange& change,
                                      const AuditRecord& audit) override {
    uint64_t id = 0;
    Status st = WriteTx(
        [&]() -> Status {
          if (Status s = LockIdOrder(); !s.ok()) return s;
          Reply r = Exec("insert policy change",
                         "INSERT INTO policy_changes(state, body) VALUES($1,$2) RETURNING id",
                         Params()
                             .Int(static_cast<int64_t>(change.state()))
                             .Bytes(store_sql::ChangeBody(change)));
          if (!r.ok()) return r.status();
          id = static_cast<uint64_t>(r.Int(0, 0));
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
    ConnLock lock(Reader());
    Reply r =
        ExecFromIdle("read policy change", "SELECT id, state, body FROM policy_changes WHERE id=$1",
                     Params().Int(static_cast<int64_t>(id)));
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return std::optional<v1::PolicyChange>();
    auto c = store_sql::ChangeFromRow(r.Int(0, 0), r.Int(0, 1), r.Str(0, 2));
    if (!c.ok()) return c.status();
    return std::optional<v1::PolicyChange>(std::move(c).value());
  }

  Result<std::vector<v1::PolicyChange>> ListPolicyChanges(uint64_t after_id,
                                                          uint32_t limit) override {
    ConnLock lock(Reader());
    Reply r =
        ExecFromIdle("list policy changes",
                     "SELECT id, state, body FROM policy_changes WHERE id>$1 ORDER BY id LIMIT $2",
                     Params().Int(static_cast<int64_t>(after_id)).Int(limit));
    if (!r.ok()) return r.status();
    std::vector<v1::PolicyChange> out;
    for (int i = 0; i < r.rows(); ++i) {
      auto c = store_sql::ChangeFromRow(r.Int(i, 0), r.Int(i, 1), r.Str(i, 2));
      if (!c.ok()) return c.status();
      out.push_back(std::move(c).value());
    }
    return out;
  }

  Status ApplyPolicyVersion(const PolicyVersionRecord& version, const v1::PolicyChange& change,
                            v1::PolicyChangeState from, const AuditRecord& audit) override {
    return WriteTx(
        [&]() -> Status {
          // Taken before the read, whose snapshot therefore includes the previous holder's
          // committed version (as for the audit head).
          if (Reply r = Exec("lock policy versions", "SELECT pg_advisory_xact_lock($1)",
                             Params().Int(kPolicyLockKey));
              !r.ok()) {
            return r.status();
          }
          Reply cur = Exec("read policy version",
                           "SELECT COALESCE(MAX(number), 0) FROM policy_versions", Params());
          if (!cur.ok()) return cur.status();
          if (Status s =
                  store_sql::NextVersion(version.number, static_cast<uint64_t>(cur.Int(0, 0)));
              !s.ok()) {
            return s;
          }
          Reply ins = Exec("insert policy version",
                           "INSERT INTO policy_versions(number, change_id, set_version, body, "
                           "applied_at_ms, applied_by) VALUES($1,$2,$3,$4,$5,$6)",
                           Params()
                               .Int(static_cast<int64_t>(version.number))
                               .Int(static_cast<int64_t>(version.change_id))
                               .Text(version.set_version)
                               .Bytes(version.set.SerializeAsString())
                               .Int(version.applied_at_ms)
                               .Text(version.applied_by));
          if (ins.sqlstate() == kUniqueViolation) {
            return Status::FailedPrecondition("policy version " + std::to_string(version.number) +
                                              " was applied meanwhile");
          }
          if (!ins.ok()) return ins.status();
          return CasChange(change, from);
        },
        &audit);
  }

  Result<std::optional<PolicyVersionRecord>> CurrentPolicyVersion() override {
    ConnLock lock(Reader());
    return OneVersion(ExecFromIdle("read policy version",
                                   std::string("SELECT ") + kVersionColumns +
                                       " FROM policy_versions ORDER BY number DESC LIMIT 1",
                                   Params()));
  }

  Result<std::optional<PolicyVersionRecord>> GetPolicyVersion(uint64_t number) override {
    ConnLock lock(Reader());
    return OneVersion(ExecFromIdle(
        "read policy version",
        std::string("SELECT ") + kVersionColumns + " FROM policy_versions WHERE number=$1",
        Params().Int(static_cast<int64_t>(number))));
  }

  Result<uint64_t> InsertException(const v1::PolicyException& exception,
                                   const AuditRecord& audit) override {
    uint64_t id = 0;
    Status st = WriteTx(
        [&]() -> Status {
          if (Status s = LockIdOrder(); !s.ok()) return s;
          Reply r = Exec("insert exception",
                         "INSERT INTO policy_exceptions(state, expires_at_ms, body) "
                         "VALUES($1,$2,$3) RETURNING id",
                         Params()
                             .Int(static_cast<int64_t>(exception.state()))
                             .Int(store_sql::TimestampMs(exception.expires_at()))
                             .Bytes(store_sql::ExceptionBody(exception)));
          if (!r.ok()) return r.status();
          id = static_cast<uint64_t>(r.Int(0, 0));
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
          // Under READ COMMITTED a concurrent update of the row makes this one re-check the
          // state against the committed version: a compare-and-swap across replicas.
          Reply r = Exec("update exception",
                         "UPDATE policy_exceptions SET state=$1, expires_at_ms=$2, body=$3 "
                         "WHERE id=$4 AND state=$5",
                         Params()
                             .Int(static_cast<int64_t>(exception.state()))
                             .Int(store_sql::TimestampMs(exception.expires_at()))
                             .Bytes(store_sql::ExceptionBody(exception))
                             .Int(static_cast<int64_t>(exception.id()))
                             .Int(static_cast<int64_t>(from)));
          if (!r.ok()) return r.status();
          if (r.affected() == 0) {
            Reply now = Exec("read exception", "SELECT state FROM policy_exceptions WHERE id=$1",
                             Params().Int(static_cast<int64_t>(exception.id())));
            if (!now.ok()) return now.status();
            std::optional<std::string> state;
            if (now.rows() == 1) {
              state = v1::ExceptionState_Name(static_cast<v1::ExceptionState>(now.Int(0, 0)));
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
    ConnLock lock(Reader());
    Reply r =
        ExecFromIdle("read exception", "SELECT id, state, body FROM policy_exceptions WHERE id=$1",
                     Params().Int(static_cast<int64_t>(id)));
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return std::optional<v1::PolicyException>();
    auto e = store_sql::ExceptionFromRow(r.Int(0, 0), r.Int(0, 1), r.Str(0, 2));
    if (!e.ok()) return e.status();
    return std::optional<v1::PolicyException>(std::move(e).value());
  }

  Result<std::vector<v1::PolicyException>> ListExceptions(v1::ExceptionState state,
                                                          uint64_t after_id,
                                                          uint32_t limit) override {
    ConnLock lock(Reader());
    Reply r = state == v1::EXCEPTION_STATE_UNSPECIFIED
                  ? ExecFromIdle("list exceptions",
                                 "SELECT id, state, body FROM policy_exceptions WHERE id>$1 "
                                 "ORDER BY id LIMIT $2",
                                 Params().Int(static_cast<int64_t>(after_id)).Int(limit))
                  : ExecFromIdle("list exceptions",
                                 "SELECT id, state, body FROM policy_exceptions WHERE state=$3 AND "
                                 "id>$1 ORDER BY id LIMIT $2",
                                 Params()
                                     .Int(static_cast<int64_t>(after_id))
                                     .Int(limit)
                                     .Int(static_cast<int64_t>(state)));
    if (!r.ok()) return r.status();
    std::vector<v1::PolicyException> out;
    for (int i = 0; i < r.rows(); ++i) {
      auto e = store_sql::ExceptionFromRow(r.Int(i, 0), r.Int(i, 1), r.Str(i, 2));
      if (!e.ok()) return e.status();
      out.push_back(std::move(e).value());
    }
    return out;
  }

  Status AppendAudit(const AuditRecord& audit) override {
    return WriteTx([] { return Status::Ok(); }, &audit);
  }

  Result<std::vector<v1::AuditEntry>> ListAudit(uint64_t after_id, uint32_t limit) override {
    ConnLock lock(Reader());
    Reply r = ExecFromIdle("read audit log",
                           "SELECT id, at_ms, actor, action, target, detail, success, prev_hash, "
                           "hash FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
                           Params().Int(static_cast<int64_t>(after_id)).Int(limit));
    if (!r.ok()) return r.status();
    std::vector<v1::AuditEntry> out;
    for (int i = 0; i < r.rows(); ++i) {
      v1::AuditEntry e;
      e.set_id(static_cast<uint64_t>(r.Int(i, 0)));
      e.set_at_ms(r.Int(i, 1));
      e.set_actor(r.Str(i, 2));
      e.set_action(r.Str(i, 3));
      e.set_target(r.Str(i, 4));
      e.set_detail(r.Str(i, 5));
      e.set_success(r.Int(i, 6) != 0);
      e.set_prev_hash(r.Str(i, 7));
      e.set_hash(r.Str(i, 8));
      out.push_back(std::move(e));
    }
    return out;
  }

 private:
  // One transaction under mu_: runs `body`, appends `audit` when given, commits; rolls back on
  // any failure, so a change is never stored without its audit entry or vice versa.
  template <typename Body>
  Status WriteTx(Body body, const AuditRecord* audit) {
    ConnLock lock(Writer());
    if (Status s = Begin(); !s.ok()) return s;
    if (Status s = body(); !s.ok()) return Rollback(s);
    if (audit != nullptr) {
      if (Status s = Audit(*audit); !s.ok()) return Rollback(s);
    }
    return Commit();
  }

  // After an UPDATE guarded by revoked_at_ms=0 changed nothing (caller holds mu_, in the
  // transaction). The read sees commits made since the UPDATE; a device that appeared only now
  // was enrolled concurrently and is neither missing nor revoked, so the caller should retry.
  // The two statements that store one attestation: its row, then the device's new state (or,
  // for a history-only one, just its sequence). Both stores judge them the same way (Judge).
  struct Statement {
    const char* what;
    const char* sql;
    Params params;
  };
  static std::pair<Statement, Statement> CommitStatements(const AcceptedAttestation& a) {
    const DeviceRecord& d = a.device_after;
    Statement ins{"insert attestation",
                  "INSERT INTO attestations(device_id, sequence, digest, issued_at_ms, "
                  "received_at_ms, status, failing_checks, envelope, live) "
                  "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                  Params()
                      .Text(a.device_id)
                      .Int(static_cast<int64_t>(a.sequence))
                      .Bytes(a.digest)
                      .Int(a.issued_at_ms)
                      .Int(a.received_at_ms)
                      .Int(static_cast<int64_t>(d.status))
                      .Text(store_sql::JoinChecks(d.failing_checks))
                      .Bytes(a.envelope.SerializeAsString())
                      .Int(a.live ? 1 : 0)};
    if (!a.live) {
      return {std::move(ins), Statement{"update device sequence",
                                        "UPDATE devices SET last_sequence=GREATEST(last_sequence, "
                                        "$1) WHERE id=$2 AND revoked_at_ms=0",
                                        Params().Int(static_cast<int64_t>(a.sequence)).Text(d.id)}};
    }
    return {std::move(ins),
            Statement{"update device",
                      "UPDATE devices SET last_seen_ms=$1, last_sequence=$2, status=$3, "
                      "status_reason=$4, failing_checks=$5, policy_version=$6, latest=$7, "
                      "platform=$8, hostname=$9, os=$10 WHERE id=$11 AND revoked_at_ms=0 "
                      "AND last_sequence < $2",
                      Params()
                          .Int(d.last_seen_ms)
                          .Int(static_cast<int64_t>(d.last_sequence))
                          .Int(static_cast<int64_t>(d.status))
                          .Text(d.status_reason)
                          .Text(store_sql::JoinChecks(d.failing_checks))
                          .Text(d.policy_version)
                          .Bytes(d.latest_attestation)
                          .Bytes(d.platform.SerializeAsString())
                          .Text(d.hostname)
                          .Text(d.platform.os())
                          .Text(d.id)}};
  }

  // What the replies of CommitStatements mean (inside the caller's transaction).
  Status Judge(const AcceptedAttestation& a, const Reply& ins, const Reply& up) {
    if (ins.sqlstate() == kUniqueViolation)
      return Status::AlreadyExists("attestation already stored");
    if (!ins.ok()) return ins.status();
    if (!up.ok()) return up.status();
    if (up.affected() != 0) return Status::Ok();
    return a.live ? RevokedOrOvertaken(a.device_id) : NotFoundOrRevoked(a.device_id);
  }

  // One attestation inside the caller's write transaction.
  Status CommitOne(const AcceptedAttestation& a) {
    auto [ins, up] = CommitStatements(a);
    Reply i = Exec(ins.what, ins.sql, ins.params);
    if (!i.ok()) return Judge(a, i, Reply());
    return Judge(a, i, Exec(up.what, up.sql, up.params));
  }

  // A group inside the caller's write transaction, its statements pipelined: sent together and
  // answered together (one round trip per chunk instead of two per attestation). After a
  // failure the server skips the rest of the chunk; the group fails as a whole, as it would
  // statement by statement.
  Status CommitPipelined(const std::vector<const AcceptedAttestation*>& batch) {
    constexpr size_t kChunk = 128;  // bounds what either side buffers
    for (size_t from = 0; from < batch.size(); from += kChunk) {
      size_t to = std::min(batch.size(), from + kChunk);
      if (PQenterPipelineMode(tl_conn) != 1) return Status::IoError("postgres: no pipeline mode");
      std::vector<Reply> replies;
      Status sent = Status::Ok();
      for (size_t k = from; k < to && sent.ok(); ++k) {
        auto [ins, up] = CommitStatements(*batch[k]);
        for (const Statement* st : {&ins, &up}) {
          std::vector<const char*> values = st->params.pointers();
          std::vector<int> lengths = st->params.lengths();
          if (PQsendQueryParams(tl_conn, st->sql, st->params.size(), st->params.types(),
                                values.data(), lengths.data(), st->params.formats(), 1) != 1) {
            sent = Status::Unavailable(std::string("postgres send: ") + PQerrorMessage(tl_conn));
            break;
          }
        }
      }
      // A sync even after a failed send: without one the server need not answer what it got,
      // and waiting for results would block. Then every result up to the sync, each followed
      // by a null, so the connection leaves pipeline mode clean.
      bool clean = PQpipelineSync(tl_conn) == 1;
      if (!clean && sent.ok()) {
        sent = Status::Unavailable(std::string("postgres sync: ") + PQerrorMessage(tl_conn));
      }
      while (clean) {
        PGresult* r = PQgetResult(tl_conn);
        if (r == nullptr) {
          if (PQstatus(tl_conn) != CONNECTION_OK) clean = false;
          continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
          PQclear(r);
          break;
        }
        replies.push_back(Check("commit group", r));
      }
      if (!clean || PQexitPipelineMode(tl_conn) != 1) {
        // A connection stuck in pipeline mode would fail every later statement: start afresh
        // (the open transaction is lost with it, so nothing of this group is committed).
        std::string why = PQerrorMessage(tl_conn);
        PQreset(tl_conn);
        return sent.ok() ? Status::Unavailable("postgres pipeline: " + why) : sent;
      }
      if (!sent.ok()) return sent;
      for (size_t k = from; k < to; ++k) {
        size_t at = 2 * (k - from);
        if (at + 1 >= replies.size()) return Status::Unavailable("postgres: replies missing");
        if (Status s = Judge(*batch[k], replies[at], replies[at + 1]); !s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  // A live commit's device UPDATE changed nothing. Revoked after the aggregator read the device:
  // nothing of the report may be stored (FailedPrecondition rolls back). Overtaken by a newer
  // sequence another replica committed meanwhile: the attestation row stays, as history, and the
  // newer state is kept.
  Status RevokedOrOvertaken(const std::string& device_id) {
    Reply r = Exec("read device", "SELECT revoked_at_ms FROM devices WHERE id=$1",
                   Params().Text(device_id));
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return Status::NotFound("no device '" + device_id + "'");
    if (r.Int(0, 0) != 0) return Status::FailedPrecondition("device " + device_id + " is revoked");
    return Status::Ok();
  }

  Status NotFoundOrRevoked(const std::string& device_id) {
    Reply r = Exec("read device", "SELECT revoked_at_ms FROM devices WHERE id=$1",
                   Params().Text(device_id));
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return Status::NotFound("no device '" + device_id + "'");
    if (r.Int(0, 0) == 0) {
      return Status::Unavailable("device " + device_id + " changed concurrently; retry");
    }
    return Status::FailedPrecondition("device " + device_id + " is revoked");
  }

  // Appends one chained entry inside the caller's transaction. The advisory lock is held until
  // that transaction ends, so no other connection (this process or another replica) reads the
  // same head; it is taken before the read, whose snapshot therefore includes the previous
  // holder's committed entry. The primary key on id is the backstop against a fork.
  Status Audit(const AuditRecord& rec) {
    if (Reply r =
            Exec("lock audit log", "SELECT pg_advisory_xact_lock($1)", Params().Int(kAuditLockKey));
        !r.ok()) {
      return r.status();
    }
    Reply head =
        Exec("read audit head", "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", Params());
    if (!head.ok()) return head.status();
    v1::AuditEntry e;
    if (head.rows() == 1) {
      e.set_id(static_cast<uint64_t>(head.Int(0, 0)) + 1);
      e.set_prev_hash(head.Str(0, 1));
    } else {
      e.set_id(1);
      e.set_prev_hash(std::string(audit::kHashSize, '\0'));
    }
    e.set_at_ms(rec.at_ms);
    e.set_actor(rec.actor);
    e.set_action(rec.action);
    e.set_target(rec.target);
    e.set_detail(rec.detail);
    e.set_success(rec.success);
    e.set_hash(audit::EntryHash(e));
    return Exec("append audit entry",
                "INSERT INTO audit(id, at_ms, actor, action, target, detail, success, prev_hash, "
                "hash) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                Params()
                    .Int(static_cast<int64_t>(e.id()))
                    .Int(e.at_ms())
                    .Text(e.actor())
                    .Text(e.action())
                    .Text(e.target())
                    .Text(e.detail())
                    .Int(e.success() ? 1 : 0)
                    .Bytes(e.prev_hash())
                    .Bytes(e.hash()))
        .status();
  }

  // Appends one alert inside the caller's transaction; `id` gets its id. The alert lock is held
  // from the insert to the commit, so alert ids commit in id order (kAlertLockKey).
  Status AddAlert(const AlertRecord& a, uint64_t* id) {
    if (Reply r =
            Exec("lock alerts", "SELECT pg_advisory_xact_lock($1)", Params().Int(kAlertLockKey));
        !r.ok()) {
      return r.status();
    }
    Reply r = Exec("insert alert",
                   "INSERT INTO alerts(kind, device_id, hostname, status, previous, at_ms, "
                   "reason, failing_checks) VALUES($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
                   Params()
                       .Text(a.kind)
                       .Text(a.device_id)
                       .Text(a.hostname)
                       .Int(a.status)
                       .Int(a.previous)
                       .Int(a.at_ms)
                       .Text(a.reason)
                       .Text(store_sql::JoinChecks(a.failing_checks)));
    if (!r.ok()) return r.status();
    *id = static_cast<uint64_t>(r.Int(0, 0));
    return Status::Ok();
  }

  // Changes and exceptions are listed by id (id > after_id, for paging), and a sequence hands
  // out ids at insert time: the audit lock, which the transaction takes again for its audit
  // entry anyway, is taken before the insert, so ids commit in id order and a reader that has
  // seen id N never finds a smaller one committed after it.
  Status LockIdOrder() {
    return Exec("lock audit log", "SELECT pg_advisory_xact_lock($1)", Params().Int(kAuditLockKey))
        .status();
  }

  // Replaces change `c` if its state is still `from`, inside the caller's transaction. Under
  // READ COMMITTED a concurrent update of the row makes this one re-check the state against the
  // committed version: a compare-and-swap across replicas.
  Status CasChange(const v1::PolicyChange& c, v1::PolicyChangeState from) {
    Reply r = Exec("update policy change",
                   "UPDATE policy_changes SET state=$1, body=$2 WHERE id=$3 AND state=$4",
                   Params()
                       .Int(static_cast<int64_t>(c.state()))
                       .Bytes(store_sql::ChangeBody(c))
                       .Int(static_cast<int64_t>(c.id()))
                       .Int(static_cast<int64_t>(from)));
    if (!r.ok()) return r.status();
    if (r.affected() != 0) return Status::Ok();
    Reply now = Exec("read policy change", "SELECT state FROM policy_changes WHERE id=$1",
                     Params().Int(static_cast<int64_t>(c.id())));
    if (!now.ok()) return now.status();
    std::optional<std::string> state;
    if (now.rows() == 1) {
      state = v1::PolicyChangeState_Name(static_cast<v1::PolicyChangeState>(now.Int(0, 0)));
    }
    return store_sql::StateMoved("policy change", c.id(), state, v1::PolicyChangeState_Name(from));
  }

  static constexpr const char* kVersionColumns =
      "number, change_id, set_version, body, applied_at_ms, applied_by";

  static Result<std::optional<PolicyVersionRecord>> OneVersion(const Reply& r) {
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return std::optional<PolicyVersionRecord>();
    PolicyVersionRecord v;
    v.number = static_cast<uint64_t>(r.Int(0, 0));
    v.change_id = static_cast<uint64_t>(r.Int(0, 1));
    v.set_version = r.Str(0, 2);
    if (!v.set.ParseFromString(r.Str(0, 3))) {
      return Status::IoError("stored policy version " + std::to_string(v.number) +
                             " does not parse");
    }
    v.applied_at_ms = r.Int(0, 4);
    v.applied_by = r.Str(0, 5);
    return std::optional<PolicyVersionRecord>(std::move(v));
  }

  Status AddEvent(const std::string& device_id, int64_t at_ms, const std::string& kind,
                  const std::string& detail) {
    return Exec("insert event",
                "INSERT INTO events(device_id, at_ms, kind, detail) VALUES($1,$2,$3,$4)",
                Params().Text(device_id).Int(at_ms).Text(kind).Text(detail))
        .status();
  }

  static Result<std::optional<DeviceRecord>> OneDevice(const Reply& r) {
    if (!r.ok()) return r.status();
    if (r.rows() == 0) return std::optional<DeviceRecord>();
    return std::optional<DeviceRecord>(ReadDevice(r, 0));
  }

  // Runs one statement on the current connection (caller holds mu_).
  Reply Exec(const char* what, const std::string& sql, const Params& p) {
    std::vector<const char*> values = p.pointers();
    std::vector<int> lengths = p.lengths();
    PGresult* r = PQexecParams(tl_conn, sql.c_str(), p.size(), p.types(), values.data(),
                               lengths.data(), p.formats(), /*resultFormat=*/1);
    return Check(what, r);
  }

  // Runs a statement that starts from no open transaction (BEGIN, or a read that is its own
  // transaction), so repeating it is safe: a connection found dropped is re-established once.
  Reply ExecFromIdle(const char* what, const std::string& sql, const Params& p) {
    bool reset = false;
    if (PQstatus(tl_conn) != CONNECTION_OK) {
      PQreset(tl_conn);
      reset = true;
    }
    Reply r = Exec(what, sql, p);
    if (!r.ok() && !reset && PQstatus(tl_conn) != CONNECTION_OK) {
      PQreset(tl_conn);
      r = Exec(what, sql, p);
    }
    return r;
  }

  // Takes ownership of `r` and maps a failure to a Status: a lost connection or a server that
  // is shutting down is Unavailable (retry later), as are serialization failures and deadlocks;
  // a string the database cannot store is InvalidArgument; anything else is an IoError.
  Reply Check(const char* what, PGresult* r) {
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Reply(r, Status::Ok(), "");
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    std::string msg = primary ? primary : PQerrorMessage(tl_conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    std::string text = std::string("postgres ") + what + ": " + msg;
    Status s;
    if (PQstatus(tl_conn) != CONNECTION_OK || sqlstate.rfind("08", 0) == 0 ||
        sqlstate.rfind("57P", 0) == 0 || sqlstate == "40001" || sqlstate == "40P01") {
      s = Status::Unavailable(text);
    } else if (sqlstate == "22021" || sqlstate == "22P05") {
      s = Status::InvalidArgument(text);
    } else {
      s = Status::IoError(text);
    }
    return Reply(r, std::move(s), std::move(sqlstate));
  }

  Status Begin() {
    // A transaction left open (never expected) would swallow this one's statements.
    if (PQstatus(tl_conn) == CONNECTION_OK && PQtransactionStatus(tl_conn) != PQTRANS_IDLE) {
      PQclear(PQexec(tl_conn, "ROLLBACK"));
    }
    return ExecFromIdle("begin", "BEGIN", Params()).status();
  }

  // A COMMIT that fails, or is lost with the connection, ends the transaction; its outcome is
  // then unknown to us and the caller gets Unavailable to retry (the store's writes are either
  // idempotent for the caller or answer AlreadyExists the second time).
  Status Commit() {
    Reply r = Exec("commit", "COMMIT", Params());
    if (!r.ok()) return r.status();
    if (std::strcmp(r.command(), "COMMIT") != 0) {
      return Status::IoError("postgres commit: the transaction was rolled back");
    }
    return Status::Ok();
  }

  Status Rollback(Status s) {
    if (PQstatus(tl_conn) == CONNECTION_OK) PQclear(PQexec(tl_conn, "ROLLBACK"));
    return s;
  }

  // A connection and its lock; the thread holding the lock uses it through tl_conn.
  struct Pooled {
    explicit Pooled(PGconn* c) : pg(c) {}
    PGconn* pg;
    std::mutex mu;
  };
  class ConnLock {
   public:
    explicit ConnLock(Pooled& c) : lock_(c.mu, std::adopt_lock), prev_(tl_conn) { tl_conn = c.pg; }
    ~ConnLock() { tl_conn = prev_; }
    ConnLock(const ConnLock&) = delete;
    ConnLock& operator=(const ConnLock&) = delete;

   private:
    std::unique_lock<std::mutex> lock_;
    PGconn* prev_;
  };
  // Locks and returns a free reader, or waits for one in turn when all are busy.
  Pooled& Reader() {
    for (auto& r : readers_) {
      if (r->mu.try_lock()) return *r;
    }
    Pooled& r = *readers_[next_reader_++ % readers_.size()];
    r.mu.lock();
    return r;
  }
  // Locks the writer (see Reader(): ConnLock adopts the lock taken here).
  Pooled& Writer() {
    writer_.mu.lock();
    return writer_;
  }

  Pooled writer_;
  std::vector<std::unique_ptr<Pooled>> readers_;
  std::atomic<size_t> next_reader_{0};
};

void IgnoreNotice(void*, const char*) {}

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url) {
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string m = parse_error ? parse_error : "out of memory";
    PQfreemem(parse_error);
    while (!m.empty() && m.back() == '\n') m.pop_back();
    return Status::InvalidArgument("bad PostgreSQL URL: " + m);
  }
  PQconninfoFree(parsed);
  // Later keywords override what the URL says: the store always speaks UTF-8. The timeout
  // comes first, so a connect_timeout in the URL wins.
  const char* keys[] = {"connect_timeout", "dbname", "client_encoding", "application_name",
                        nullptr};
  const char* values[] = {"10", url.c_str(), "UTF8", "vigil-server", nullptr};
  std::vector<PGconn*> conns;
  auto close_all = [&] {
    for (PGconn* c : conns) PQfinish(c);
  };
  for (int i = 0; i < 1 + kReaders; ++i) {
    PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (conn == nullptr) {
      close_all();
      return Status::Unavailable("cannot connect to PostgreSQL: out of memory");
    }
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string m = PQerrorMessage(conn);
      PQfinish(conn);
      close_all();
      while (!m.empty() && m.back() == '\n') m.pop_back();
      return Status::Unavailable("cannot connect to PostgreSQL: " + m);
    }
    // "relation already exists, skipping" and the like are not for the server's log.
    PQsetNoticeProcessor(conn, &IgnoreNotice, nullptr);
    conns.push_back(conn);
  }
  auto store = std::make_unique<PostgresStore>(
      conns[0], std::vector<PGconn*>(conns.begin() + 1, conns.end()));
  if (Status s = store->Init(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vigil::server

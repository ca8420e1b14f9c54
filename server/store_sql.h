// SQL shared by the SQLite and PostgreSQL stores, so the two can never disagree on what a device
// status means: the effective-status filter (REVOKED > TAMPERED > PENDING > UNKNOWN > STALE >
// verdict), the ",a,b," encoding of failing checks, and short key prefixes for events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "vigil/v1/attestation.pb.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::server::store_sql {

// The WHERE conditions (each starting with " AND ") selecting devices whose effective status is
// `status`; empty for DEVICE_STATUS_UNSPECIFIED. `p` is the parameter marker ('?' for SQLite,
// '$' for PostgreSQL): parameter 2 is the stale-before time, 3 the status number.
std::string StatusFilter(v1::DeviceStatus status, char p);

// The effective-status indexes, the same DDL for both stores (appended to their schemas). Their
// WHERE clauses are terms StatusFilter writes, so the planner can use them: the verdict index
// changes only when a verdict does (a report that changes nothing but the time rewrites no page
// of it); the last-seen one finds the stale and never-seen devices and counts the stale ones by
// verdict without reading the table; the flagged one finds the few revoked, tampered and
// pending devices.
inline constexpr const char* kDeviceIndexes = R"sql(
DROP INDEX IF EXISTS devices_status;
CREATE INDEX IF NOT EXISTS devices_verdict ON devices(status, id)
  WHERE revoked_at_ms=0 AND tampered=0 AND pending=0;
CREATE INDEX IF NOT EXISTS devices_seen ON devices(last_seen_ms, status)
  WHERE revoked_at_ms=0 AND tampered=0 AND pending=0;
CREATE INDEX IF NOT EXISTS devices_flagged ON devices(id)
  WHERE revoked_at_ms>0 OR tampered=1 OR pending=1;
)sql";

// The status a device row counts under, without staleness (which depends on the clock): REVOKED,
// TAMPERED, PENDING, UNKNOWN or the verdict. `row` is "NEW", "OLD" or "" (the row itself).
std::string Bucket(const std::string& row);

// Counts by effective status in ONE statement (one snapshot): the per-bucket counters that
// triggers keep current as devices change (rows `bucket, n`), and the stale devices by verdict
// (rows `kStaleOffset + verdict, n`), found through the partial index on last_seen_ms, so the cost
// is the number of stale devices, not the fleet's size. Parameter 1 is the stale-before time.
inline constexpr int kStaleOffset = 100;
std::string CountsQuery(char p);
std::vector<std::pair<v1::DeviceStatus, uint64_t>> CountsFromRows(
    const std::vector<std::pair<int64_t, int64_t>>& rows);

// Alerts. devices.alert_state is the last status announced for a device (0 = none yet):
// COMPLIANT, NON_COMPLIANT or EXCEPTED (its verdict, kVerdictAlertStates), STALE, TAMPERED or
// REVOKED. A change of the row moves it to AlertState(); the change raises an alert when
// AlertRaised() holds: into NON_COMPLIANT or TAMPERED, or into COMPLIANT from NON_COMPLIANT,
// STALE or TAMPERED ("device.resolved"). EXCEPTED (failing only checks an approved exception
// covers) is tracked so that leaving it for NON_COMPLIANT raises "device.non_compliant"; entering
// it, and leaving it for COMPLIANT, raise nothing (its failures were accepted, not fixed). STALE
// is announced by the stale sweep (Store::RaiseStaleAlerts) for devices in a verdict state, since
// no row change marks it; the row leaves STALE only when it reports again (last_seen_ms moves
// on). Both stores run these expressions in a trigger on the device row, inside the transaction
// that changes it.
inline constexpr const char* kVerdictAlertStates = "(1, 2, 6)";
std::string AlertState();                           // over NEW and OLD
std::string AlertRaised(const std::string& state);  // `state`: AlertState() or a variable
std::string AlertKind(const std::string& state);
std::string AlertReason(const std::string& state);
// The alert time: the new report's receive time, else `now_ms_sql` (the database's clock).
std::string AlertAt(const std::string& now_ms_sql);
// The columns the alert trigger watches.
inline constexpr const char* kAlertWatched =
    "status, tampered, revoked_at_ms, pending, last_seen_ms";

// Policy changes and exceptions are stored as their serialized message, with the id (the key)
// and the state (the compare-and-swap guard) in columns: those are the truth, and a row read
// back gets them set in its message. The stored body carries no id.
std::string ChangeBody(const v1::PolicyChange& change);
std::string ExceptionBody(const v1::PolicyException& exception);
Result<v1::PolicyChange> ChangeFromRow(int64_t id, int64_t state, const std::string& body);
Result<v1::PolicyException> ExceptionFromRow(int64_t id, int64_t state, const std::string& body);
int64_t TimestampMs(const google::protobuf::Timestamp& t);
// Why a compare-and-swap update of `what` ("policy change", "exception") `id` from state
// `from` changed no row, given the row's state read after it (nullopt: there is no such row).
Status StateMoved(const std::string& what, uint64_t id, std::optional<std::string> state,
                  const std::string& from);
// OK when `number` is the version after `current` (0: none yet); else why it cannot be applied.
Status NextVersion(uint64_t number, uint64_t current);

// Tags are stored like failing checks (",a,b,"), sorted and unique.
bool IsValidTag(const std::string& tag);

// failing_checks is stored as ",a,b," so a search for ",a," matches whole names only.
std::string JoinChecks(const std::vector<std::string>& checks);
std::vector<std::string> SplitChecks(const std::string& s);

// The first 8 bytes of a key id in hex, for event texts.
std::string HexPrefix(const std::string& bytes);

}  // namespace vigil::server::store_sql

// vigilctl's output: FleetService responses turned into rows, and rows into aligned tables
// (for people) or RFC 4180 CSV (for spreadsheets and scripts); the readable rendering of a
// device's evidence; and the writers that put a report on standard output or atomically into a
// file. Everything but the writers is a pure function (tested in server/vigilctl_test.cc).
//
// Strings that came from devices (hostnames, reasons, evidence) are untrusted: the table and
// text renderings escape control characters, invalid UTF-8 and bidirectional overrides so a
// device cannot move the cursor or disguise a line on the reviewer's terminal. CSV and JSON keep
// the data verbatim (quoted / escaped per their formats).
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::ctl {

using Row = std::vector<std::string>;

struct Table {
  Row header;
  std::vector<Row> rows;
};

// Table cells say "-" (or "never") for nothing and join lists with ","; CSV cells are empty for
// nothing, join lists with ";", use snake_case headers and exact times.
enum class Style { kTable, kCsv };

// ---- formats --------------------------------------------------------------------------------

// One RFC 4180 field: quoted when it holds a comma, quote, CR or LF; quotes doubled.
std::string CsvField(std::string_view s);
// One record: fields joined by commas, ended by CRLF.
std::string CsvRecord(const Row& row);
// Header record then every row.
std::string FormatCsv(const Table& table);

// Makes untrusted text safe for a terminal: control characters as \n \t \r \xNN, invalid UTF-8
// bytes as \xNN, C1 controls and bidirectional formatting characters as \uNNNN.
std::string Sanitize(std::string_view s);
// Columns two spaces apart, each as wide as its widest cell (in characters), cells sanitized, no
// trailing spaces; header first.
std::string FormatTable(const Table& table);

// RFC 3339 UTC to the second ("2026-11-30T08:00:00Z"); "" when unset.
std::string FormatTime(const google::protobuf::Timestamp& t);
// The same with the fraction of a second when there is one (3, 6 or 9 digits).
std::string FormatTimeExact(const google::protobuf::Timestamp& t);

// ---- responses to rows ----------------------------------------------------------------------

Table DevicesTable(const google::protobuf::RepeatedPtrField<v1::DeviceSummary>& devices,
                   Style style);
Table HistoryTable(const google::protobuf::RepeatedPtrField<v1::HistoryEntry>& entries,
                   Style style);
Table AlertsTable(const google::protobuf::RepeatedPtrField<v1::Alert>& alerts, Style style);
Table SinksTable(const google::protobuf::RepeatedPtrField<v1::SinkState>& sinks);
Table AuditTable(const std::vector<v1::AuditEntry>& entries, Style style);
Table SummaryTable(const v1::SummaryResponse& resp, Style style);
Table StatsTable(const v1::ServerStatsResponse& resp, Style style);

// The export's CSV: the header, and one row per (attestation, check) of a record (one row with
// empty check columns when the record has no checks).
Row ExportCsvHeader();
std::vector<Row> ExportCsvRows(const v1::ExportRecord& record);

// A message (a check's Evidence) as indented "field: value" lines. A fact (a message with
// `value` and `from`) is one line: its value, then where it came from in brackets
// ("[/etc/login.defs:12, key PASS_MAX_DAYS, raw \"99999\"]"). Unset fields are left out, the
// Evidence's oneof level is skipped. Lines are not sanitized (the caller does).
std::vector<std::string> EvidenceLines(const google::protobuf::Message& msg);

// `vigilctl device ID` as text: the device, its checks with reasons and evidence, history,
// events. Sanitized.
std::string DeviceDetail(const v1::GetDeviceResponse& resp);

// ---- policy changes and exceptions ----------------------------------------------------------
// Text renderings are sanitized line by line (reasons and actors are typed by people, hostnames
// come from devices); CSV keeps the data verbatim.

// Names without the prefixes proto3 forced on them ("ACTIVE" for EXCEPTION_ACTIVE); "" unset.
std::string PolicyChangeStateName(v1::PolicyChangeState s);
std::string PolicyChangeKindName(v1::PolicyChangeKind k);
std::string ExceptionStateName(v1::ExceptionState s);

// `policy show`: version, change, applied by/at, the set's version, then the set as pretty JSON
// (the protobuf JSON mapping, as `policy propose --file` takes it).
std::string PolicyVersionText(const v1::PolicyVersionInfo& info);
// `device ID --policy`: the version, the overrides applied, a conflict, the effective policy as
// JSON, where values came from (override by JSON path), the active exceptions.
std::string DevicePolicyText(const v1::DevicePolicyResponse& resp);
// `policy propose`: the new change's id and state, its diff, and what to run next.
std::string ProposedText(const v1::PolicyChange& change);
// `policy approve|reject|apply|rollback`: id, kind, state, version, who and when, one per line.
std::string PolicyChangeBrief(const v1::PolicyChange& change);
// `policy change`: every field, the diff, and the compliance before and after the apply.
std::string PolicyChangeDetail(const v1::PolicyChange& change);
// `policy preview`: a warning first when current_version != base_version; the diff; counts by
// status BEFORE / AFTER / CHANGE; checks FAILING-BEFORE / FAILING-AFTER / NEWLY-FAILING /
// NEWLY-PASSING; the devices whose status would change.
std::string PolicyImpactText(const v1::PolicyImpact& impact);
// `policy review`: counts by status and failing devices by check, BEFORE / AFTER / NOW.
std::string PolicyReviewText(const v1::PolicyReview& review);
// `policy diff`: one line each, or "(no differences)".
std::string DiffText(const google::protobuf::RepeatedPtrField<std::string>& lines);

// Device counts by status of several snapshots side by side: one column per snapshot (0 where a
// status is absent), statuses in enum order, a TOTAL row.
Table StatusCountsTable(
    const std::vector<std::string>& columns,
    const std::vector<const google::protobuf::RepeatedPtrField<v1::StatusCount>*>& counts);
// Failing devices by check, side by side; a cell is "N" or "N (M excepted)".
Table CheckCountsTable(
    const std::vector<std::string>& columns,
    const std::vector<const google::protobuf::RepeatedPtrField<v1::CheckCount>*>& counts);

// `policy history`: one row per change, oldest first; the change that made current_version
// current is marked ("4 (current)" in a table, a `current` column in CSV).
Table PolicyChangesTable(const v1::ListPolicyChangesResponse& resp, Style style);
// `exception list`.
Table ExceptionsTable(const google::protobuf::RepeatedPtrField<v1::PolicyException>& exceptions,
                      Style style);
// `exception request|approve|reject|revoke`: the exception, one field per line.
std::string ExceptionBrief(const v1::PolicyException& e);

// ---- writers --------------------------------------------------------------------------------

// Where a report goes. Write may buffer; Commit makes everything written visible (and durable,
// for a file) or reports why not. An Output destroyed without Commit leaves no trace of itself
// where the report was meant to go.
class Output {
 public:
  virtual ~Output() = default;
  virtual Status Write(std::string_view data) = 0;
  virtual Status Commit() = 0;
};

std::unique_ptr<Output> StdoutOutput();
// Writes into a new temporary file beside `path` (mode 0600); Commit fsyncs it, renames it over
// `path` and syncs the directory. Without Commit the temporary file is removed and `path` is
// untouched.
Result<std::unique_ptr<Output>> AtomicFileOutput(const std::string& path);

}  // namespace vigil::ctl

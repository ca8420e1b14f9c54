// vigilctl's command line: the commands and their flags (as data, which also produces every
// --help page), parsing argv into an Invocation, and the pure conversions from flag text to
// request fields (statuses, tags, durations and RFC 3339 times, limits). Nothing here talks to
// the network or reads the clock: `now_ms` is passed in, so everything is unit-tested
// (server/vigilctl_test.cc). Errors are Status::InvalidArgument with a message that says what to
// do; vigilctl prints it and exits 2. The one exception to "nothing reads": `policy propose`
// parses the policy file's text (read by the caller) with collectors::ParsePolicySet, so a bad
// file is refused before any call.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::ctl {

// Exit codes (documented in every --help page, README.md and docs/vigilctl.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;        // server unreachable, or it failed the call
inline constexpr int kExitUsage = 2;         // bad command, flag or value
inline constexpr int kExitNotFound = 3;      // no such device, change, version, exception
inline constexpr int kExitUnauthorized = 4;  // token missing/invalid/expired/revoked, or role
inline constexpr int kExitAuditBroken = 5;   // the audit log does not verify

struct FlagInfo {
  std::string_view name;   // without "--"
  std::string_view value;  // placeholder shown in help ("N", "TIME"); empty for a boolean flag
  std::string_view help;
};

struct CommandInfo {
  std::string_view name;      // "devices", "device tag", "audit verify", ...
  std::string_view synopsis;  // "devices [--status S] ..."
  std::string_view summary;   // one line for the command list
  std::string_view details;   // paragraphs for the command's own --help
  std::vector<FlagInfo> flags;
  std::vector<std::string_view> formats;  // accepted --format values, default first
  size_t min_args = 0;                    // positional arguments after the command words
  size_t max_args = 0;                    // SIZE_MAX: unbounded
};

// Every command, in help order.
const std::vector<CommandInfo>& Commands();
// Flags every command accepts (--server, --ca, --token-file, --insecure, --timeout, --format,
// --help).
const std::vector<FlagInfo>& GlobalFlags();
// nullptr when there is no such command.
const CommandInfo* FindCommand(std::string_view name);

// The whole usage (`vigilctl --help`) and one command's (`vigilctl devices --help`).
std::string MainUsage();
std::string CommandUsage(const CommandInfo& cmd);
// A group's commands (`vigilctl policy --help`): each with its synopsis and summary.
std::string GroupUsage(std::string_view group);

// A parsed command line.
struct Invocation {
  const CommandInfo* command = nullptr;  // nullptr: no command (print the main usage)
  std::vector<std::string> args;         // positionals after the command words
  std::map<std::string, std::string> flags;
  // --help/-h, or `help [COMMAND]`: print help for `command` (or the main usage) and exit 0.
  bool help = false;
  // `vigilctl policy --help`, `vigilctl help exception`: a command group's help (command is
  // nullptr, help is true).
  std::string group;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  std::string GetOr(const std::string& name, const std::string& fallback) const;
  // The --format value, validated against the command's formats (its default when absent).
  std::string Format() const;
};

// Parses argv[first..]: global and command flags may come before or after the command,
// "--name value" or "--name=value", "--" ends the flags. Validates the command, the number of
// arguments, that every flag belongs to the command (with a "did you mean" suggestion), that no
// flag is given twice, that required flags are there (and a TEXT flag is not blank), that
// exactly one of each exclusive pair is given (`exception request`: --device or --tag, --expires
// or --for), and the --format value.
Result<Invocation> ParseCommandLine(const std::vector<std::string>& argv);

// ---- values ---------------------------------------------------------------------------------

// "NON_COMPLIANT", also "non-compliant" or "non_compliant". Errors list the statuses.
Result<v1::DeviceStatus> ParseDeviceStatus(std::string_view text);
// A positive integer for --limit/--history/--timeout (flag named in errors).
Result<uint64_t> ParsePositive(std::string_view flag, std::string_view text);
// An unsigned integer (0 allowed) for --after-id.
Result<uint64_t> ParseUnsigned(std::string_view flag, std::string_view text);
// A tag as the server accepts it: 1..64 of [A-Za-z0-9._:=-].
Status ValidateTag(std::string_view tag);
// A check id as the server accepts it: lower-case letters, digits and '_'.
Status ValidateCheckId(std::string_view check);

// "90s", "15m", "12h", "7d", "2w" or a sum such as "1d12h": the number of seconds.
Result<int64_t> ParseDuration(std::string_view text);
// RFC 3339 ("2026-11-30T00:00:00Z", "2026-11-30T09:15:00.5+01:00") or a date
// ("2026-11-30", midnight UTC).
Result<google::protobuf::Timestamp> ParseRfc3339(std::string_view text);
// A --since/--until/--not-seen-since value: a duration means that long before `now_ms`, else an
// RFC 3339 time or date. `flag` names the flag in errors.
Result<google::protobuf::Timestamp> ParseTimeArg(std::string_view flag, std::string_view text,
                                                 int64_t now_ms);

// ---- requests from flags --------------------------------------------------------------------
// Each converts and validates the invocation's flags into the request; paging fields are left to
// the caller. `now_ms` resolves relative times.

Result<v1::ListDevicesRequest> DevicesRequest(const Invocation& inv, int64_t now_ms);
Result<v1::DeviceHistoryRequest> HistoryRequest(const Invocation& inv, int64_t now_ms);
Result<v1::ListAlertsRequest> AlertsRequest(const Invocation& inv);
Result<v1::ExportRequest> ExportRequestFromFlags(const Invocation& inv, int64_t now_ms);
Result<v1::SetDeviceTagsRequest> TagsRequest(const Invocation& inv);
// --limit as a count (nullopt: all).
Result<std::optional<uint64_t>> LimitFlag(const Invocation& inv);

// ---- policy changes and exceptions ----------------------------------------------------------

// A positional id (change, version, exception): a whole number from 1. `what` names it in
// errors ("change id").
Result<uint64_t> ParseId(std::string_view what, std::string_view text);
// "requested", "active", "rejected", "revoked", "expired" (any case; "EXCEPTION_ACTIVE" too).
Result<v1::ExceptionState> ParseExceptionState(std::string_view text);

// `policy show [--version N]` (absent: 0, the current version).
Result<v1::GetPolicyRequest> PolicyShowRequest(const Invocation& inv);
// `policy propose --file F ...`: `file_text` is F's content. The set is parsed and validated
// here with collectors::ParsePolicySet (errors name the file, the override and the field) and
// sent in its canonical form.
Result<v1::ProposePolicyChangeRequest> ProposeRequest(const Invocation& inv,
                                                      const std::string& file_text);
// `policy preview|apply|change|review CHANGE` (preview: --limit as device_limit, 1..10000).
Result<v1::PolicyChangeRequest> PolicyChangeRequestFromArgs(const Invocation& inv);
// `policy approve|reject CHANGE [--reason TEXT]`.
Result<v1::PolicyDecisionRequest> PolicyDecisionRequestFromArgs(const Invocation& inv);
// `policy rollback --to VERSION --reason TEXT`.
Result<v1::RollbackPolicyRequest> RollbackRequest(const Invocation& inv);
// `policy diff V1 [V2]` (V2 absent: 0, the current version).
Result<v1::DiffPolicyVersionsRequest> DiffRequest(const Invocation& inv);
// `exception request (--device ID | --tag TAG) --check C --reason TEXT (--expires TIME | --for
// DURATION)`. --for counts from `now_ms`; the expiry must be after now and at most 366 days
// ahead (the server's limits, checked here so a mistake costs no call).
Result<v1::RequestExceptionRequest> ExceptionRequestFromFlags(const Invocation& inv,
                                                              int64_t now_ms);
// `exception approve|reject|revoke ID [--reason TEXT]`.
Result<v1::ExceptionDecisionRequest> ExceptionDecisionRequestFromArgs(const Invocation& inv);
// `exception list [--state S] [--device ID]`.
Result<v1::ListExceptionsRequest> ListExceptionsRequestFromFlags(const Invocation& inv);

}  // namespace vigil::ctl

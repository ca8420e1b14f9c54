#include "server/vigilctl_cli.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <set>

#include "collectors/policy_set.h"

namespace vigil::ctl {
namespace {

constexpr std::string_view kStatusHelp =
    "COMPLIANT NON_COMPLIANT UNKNOWN STALE TAMPERED EXCEPTED PENDING REVOKED";

constexpr std::string_view kWhenHelp =
    "WHEN is a duration ago (90m, 12h, 7d, 2w, 1d12h) or an RFC 3339 time "
    "(2026-11-30T00:00:00Z, 2026-11-30T09:00:00+01:00) or date (2026-11-30, midnight UTC).";

constexpr std::string_view kExitCodes =
    "Exit codes: 0 success, 1 server unreachable or failed (also a state that does not allow\n"
    "it, e.g. applying an unapproved change), 2 usage error (also a request the server refuses\n"
    "as invalid), 3 not found (device, policy change or version, exception), 4 not authorized\n"
    "(missing, invalid, expired or revoked token, or a role that may not do this),\n"
    "5 the audit log does not verify.\n";

const std::vector<FlagInfo>& GlobalFlagsImpl() {
  static const std::vector<FlagInfo> kFlags = {
      {"server", "HOST:PORT", "the vigil-server (default: $VIGIL_SERVER or 127.0.0.1:7400)"},
      {"ca", "FILE",
       "CA certificate to trust (default: $VIGIL_CA, else the system's roots); "
       "`vigil-server init` writes it to DATA_DIR/tls/ca.crt"},
      {"token-file", "FILE",
       "file holding an access token (default: $VIGIL_TOKEN_FILE, or the token itself in "
       "$VIGIL_TOKEN); create one with `vigil-server token create`"},
      {"insecure", "", "plaintext gRPC (only for a server started with --insecure on loopback)"},
      {"timeout", "SECONDS", "deadline of each call (default 10; 3600 for export)"},
      {"format", "F",
       "output: table (aligned columns, the default), json (protobuf JSON mapping), csv "
       "(RFC 4180, header row, CRLF line ends); each command lists the ones it accepts"},
      {"help", "", "this help; `vigilctl COMMAND --help` for one command"},
  };
  return kFlags;
}

const std::vector<CommandInfo>& CommandsImpl() {
  static const std::vector<CommandInfo> kCommands = {
      {"devices",
       "devices [--status S] [--os OS] [--failing-check C] [--tag T] [--not-seen-since WHEN] "
       "[--limit N]",
       "list devices, filtered; pages through the whole fleet",
       "Devices in id order. Filters combine: a device is listed when it matches all of them.\n"
       "Every page is fetched (1000 devices per call) unless --limit is given.\n"
       "Columns: DEVICE HOSTNAME STATUS FAILING LAST-SEEN OS TAGS.",
       {{"status", "S",
         "only devices with this status, one of: COMPLIANT NON_COMPLIANT UNKNOWN "
         "STALE TAMPERED EXCEPTED PENDING REVOKED"},
        {"os", "OS", "only this platform: linux, windows, darwin"},
        {"failing-check", "C",
         "only devices failing (FAIL or ERROR) this check: screen_lock, password_policy, "
         "usb_storage, ..."},
        {"tag", "T", "only devices carrying this tag"},
        {"not-seen-since", "WHEN",
         "only devices whose last report is older than WHEN (devices that never reported "
         "included)"},
        {"limit", "N", "print at most N devices (default: all)"}},
       {"table", "json", "csv"},
       0,
       0},
      {"device",
       "device ID [--history N] | device ID --policy",
       "one device: status, checks with reasons and evidence, history, events",
       "Each check's evidence is printed as the facts the agent collected, each with where it\n"
       "came from (file:line, key, the raw text) and whether it is locked or a user can change\n"
       "it. --format json prints the whole GetDevice response (protobuf JSON mapping).\n"
       "With --policy, the device's effective policy instead (GetDevicePolicy): the policy\n"
       "version, the overrides applied, which override set each value (the rest comes from the\n"
       "default), a conflict between overrides if any, and the active exceptions covering it.\n"
       "Admin subcommands: `device approve`, `device revoke`, `device tag` (see their --help).",
       {{"history", "N", "the last N attestations (default 10, at most 1000)"},
        {"policy", "", "print the device's effective policy and exceptions instead"}},
       {"table", "json"},
       1,
       1},
      {"device approve",
       "device approve ID",
       "(admin) let a PENDING device report",
       "Prints the device id and its new status.",
       {},
       {"table", "json"},
       1,
       1},
      {"device revoke",
       "device revoke ID --reason TEXT",
       "(admin) reject the device's further reports and flag it REVOKED",
       "Prints the device id and its new status. The reason is recorded in the audit log.",
       {{"reason", "TEXT", "why (required; recorded in the audit log)"}},
       {"table", "json"},
       1,
       1},
      {"device tag",
       "device tag ID TAG... | device tag ID --clear",
       "(admin) replace a device's tags",
       "The tags given REPLACE the device's tags (to add one, repeat the existing ones).\n"
       "A tag is 1 to 64 of A-Z a-z 0-9 . _ : = - ; at most 32 tags. Prints the device id and\n"
       "its tags.",
       {{"clear", "", "remove every tag (giving no tags is refused, so it is never an accident)"}},
       {"table", "json"},
       1,
       SIZE_MAX},
      {"history",
       "history ID [--since WHEN] [--until WHEN] [--limit N]",
       "one device's status over time, newest first",
       "One row per stored attestation received at or after --since and before --until:\n"
       "sequence, issue time (the device's clock), receive time (the server's), the status it\n"
       "gave the device, and the failing checks. Every page is fetched unless --limit is given.",
       {{"since", "WHEN", "received at or after WHEN (default: the beginning)"},
        {"until", "WHEN", "received before WHEN (default: now)"},
        {"limit", "N", "print at most N entries, the newest (default: all)"}},
       {"table", "json", "csv"},
       1,
       1},
      {"summary",
       "summary",
       "device counts by status, and the policy version",
       "",
       {},
       {"table", "json", "csv"},
       0,
       0},
      {"alerts",
       "alerts [--device ID] [--after-id N] [--limit N]",
       "alerts raised on status changes, and each alert sink's delivery state",
       "Alerts oldest first, starting after --after-id: to follow new alerts, pass the last ID\n"
       "you saw. Then each sink: alerts delivered up to (DELIVERED), waiting (PENDING), given up\n"
       "(FAILED), failed attempts at the next alert, when it is tried next, and the last error.\n"
       "--format csv prints the alerts only; --format json the ListAlerts response (alerts and\n"
       "sinks).",
       {{"device", "ID", "only this device's alerts"},
        {"after-id", "N", "only alerts with an id above N (default 0: from the first)"},
        {"limit", "N", "print at most N alerts (default: all)"}},
       {"table", "json", "csv"},
       0,
       0},
      {"export",
       "export --format csv|json [--since WHEN] [--until WHEN] [--status S] [--tag T] "
       "[--output FILE]",
       "the evidence report for auditors: every attestation with every check's verdict",
       "Streams every attestation received at or after --since and before --until, devices in\n"
       "id order, each with every check's status, reason and evidence (judged under the\n"
       "server's current policy) and the verdict stored when it was received.\n"
       "\n"
       "--format json: JSON Lines, one ExportRecord per line in the protobuf JSON mapping\n"
       "  (bytes such as digest and signedAttestation are base64).\n"
       "--format csv: RFC 4180 (header row, CRLF line ends, quoted where needed), one row per\n"
       "  (attestation, check): device_id, hostname, sequence, issued_at, received_at,\n"
       "  device_status (stored when received), check, check_status, reason, evidence (the\n"
       "  check's evidence as compact JSON), digest (SHA-256 of the signed attestation, hex).\n"
       "  An attestation without checks gives one row with the check columns empty.\n"
       "\n"
       "With --output, the report goes to a temporary file beside FILE (mode 0600) that is\n"
       "renamed over FILE only once the whole stream arrived: FILE is never half-written.",
       {{"since", "WHEN", "received at or after WHEN (default: the beginning)"},
        {"until", "WHEN", "received before WHEN (default: now)"},
        {"status", "S", "only devices whose status is S now (see `devices --help`)"},
        {"tag", "T", "only devices carrying this tag"},
        {"output", "FILE", "write the report to FILE atomically (default: standard output)"}},
       {"csv", "json"},
       0,
       0},
      {"audit",
       "audit [--limit N]",
       "(admin, approver) the audit log: who did what",
       "The last N entries of the hash-chained audit log, oldest first.",
       {{"limit", "N", "the last N entries (default 100)"}},
       {"table", "json", "csv"},
       0,
       0},
      {"audit verify",
       "audit verify [--expect-head HEX]",
       "(admin, approver) check the audit log's hash chain",
       "Reads the whole log and recomputes every hash from the first entry; exit 5 when it does\n"
       "not verify. Prints the number of entries and the head hash: record it, and pass it as\n"
       "--expect-head later to detect a truncated or rewritten log.",
       {{"expect-head", "HEX", "also require this earlier head hash to be in the log"}},
       {"table"},
       0,
       0},
      {"stats",
       "stats",
       "accepted and rejected requests by reason (the server's counters)",
       "",
       {},
       {"table", "json", "csv"},
       0,
       0},
      {"policy show",
       "policy show [--version N]",
       "the current policy set, or an earlier applied version",
       "Prints the version number, the change that made it current, who applied it and when,\n"
       "and the policy set as JSON (the format `policy propose --file` takes).\n"
       "--format json prints the PolicyVersionInfo.",
       {{"version", "N", "an earlier applied version (default: the current one)"}},
       {"table", "json"},
       0,
       0},
      {"policy propose",
       "policy propose --file F --reason TEXT --rollback-plan TEXT",
       "(admin) propose a new policy set; nothing changes until approved and applied",
       "F is a PolicySet (or a plain Policy) in JSON, as in docs/policy.md. It is parsed and\n"
       "validated here first, so a mistake is reported (naming the file, the override and the\n"
       "field) before anything is sent. Prints the new change id and its state; then preview it\n"
       "with `vigilctl policy preview ID` and ask another person to approve it.",
       {{"file", "F", "the proposed policy set, JSON (required)"},
        {"reason", "TEXT", "why (required; recorded with the change and in the audit log)"},
        {"rollback-plan", "TEXT", "how to undo the change if it goes wrong (required)"}},
       {"table", "json"},
       0,
       0},
      {"policy preview",
       "policy preview CHANGE [--limit N]",
       "what a change would do to every device, from their latest evidence",
       "Re-judges every device's latest evidence under the proposed set (nothing is changed).\n"
       "Prints the differences from the base version, device counts by status before and after,\n"
       "each check's failing devices before and after (newly failing, newly passing), and the\n"
       "devices whose status would change. When the current version is no longer the change's\n"
       "base version, applying it will be refused: propose it again on the current version.",
       {{"limit", "N",
         "list at most N changed devices (default: the server's, 100; at most 10000)"}},
       {"table", "json"},
       1,
       1},
      {"policy approve",
       "policy approve CHANGE [--reason TEXT]",
       "(approver, not the proposer) approve a proposed change",
       "PROPOSED -> APPROVED. Prints the change's id, kind, state, version, who and when.",
       {{"reason", "TEXT", "why (optional; recorded with the decision)"}},
       {"table", "json"},
       1,
       1},
      {"policy reject",
       "policy reject CHANGE --reason TEXT",
       "(approver or admin) reject a proposed or approved change",
       "PROPOSED or APPROVED -> REJECTED. Prints the change's id, kind, state, who and when.",
       {{"reason", "TEXT", "why (required; recorded with the decision)"}},
       {"table", "json"},
       1,
       1},
      {"policy apply",
       "policy apply CHANGE",
       "(admin) make an approved change the current policy",
       "APPROVED -> APPLIED: the set becomes the current version and every device is re-judged\n"
       "at once. Refused (exit 1) when the current version is no longer the change's base.\n"
       "Prints the change's id, kind, state, new version, who and when.",
       {},
       {"table", "json"},
       1,
       1},
      {"policy rollback",
       "policy rollback --to VERSION --reason TEXT",
       "(admin) make an earlier applied version current again",
       "Recorded as a change of its own (kind ROLLBACK), applied in one step. Prints it.",
       {{"to", "VERSION", "the applied version to make current (required)"},
        {"reason", "TEXT", "why (required; recorded with the change and in the audit log)"}},
       {"table", "json"},
       0,
       0},
      {"policy change",
       "policy change CHANGE",
       "one change request in full: who asked, why, who decided, the diff, the impact",
       "",
       {},
       {"table", "json"},
       1,
       1},
      {"policy review",
       "policy review CHANGE",
       "compliance before an applied change, right after it, and now",
       "Device counts by status and failing devices by check, side by side: BEFORE (at apply,\n"
       "before re-evaluation), AFTER (right after) and NOW.",
       {},
       {"table", "json"},
       1,
       1},
      {"policy history",
       "policy history",
       "every change request, oldest first; the current version is marked",
       "One row per change: id, kind, state, the version it became, who proposed it and when,\n"
       "who decided, when it was applied, and why. All pages are fetched.",
       {},
       {"table", "json", "csv"},
       0,
       0},
      {"policy diff",
       "policy diff V1 [V2]",
       "the differences from applied version V1 to V2 (default: the current version)",
       "",
       {},
       {"table", "json"},
       1,
       2},
      {"exception request",
       "exception request (--device ID | --tag TAG) --check CHECK --reason TEXT "
       "(--expires TIME | --for DURATION)",
       "(admin) ask for an exception to one check for a device or a tag",
       "An exception, once approved by another person, turns the check's FAIL or ERROR into\n"
       "EXCEPTED for the device (or every device carrying the tag) until it expires. The expiry\n"
       "is after now and at most 366 days ahead. Prints the exception's id and state.",
       {{"device", "ID", "the device the exception is for"},
        {"tag", "TAG", "or: every device carrying this tag"},
        {"check", "CHECK", "the check excepted: screen_lock, password_policy, usb_storage, ..."},
        {"reason", "TEXT", "why (required; recorded with the exception)"},
        {"expires", "TIME",
         "when it ends: RFC 3339 (2026-12-31T18:00:00Z) or a date (midnight UTC)"},
        {"for", "DURATION", "or: how long from now (12h, 7d, 2w, 1d12h)"}},
       {"table", "json"},
       0,
       0},
      {"exception approve",
       "exception approve ID [--reason TEXT]",
       "(approver, not the requester) approve a requested exception",
       "REQUESTED -> ACTIVE. Prints the exception.",
       {{"reason", "TEXT", "why (optional; recorded with the decision)"}},
       {"table", "json"},
       1,
       1},
      {"exception reject",
       "exception reject ID --reason TEXT",
       "(approver or admin) reject a requested exception",
       "REQUESTED -> REJECTED. Prints the exception.",
       {{"reason", "TEXT", "why (required; recorded with the decision)"}},
       {"table", "json"},
       1,
       1},
      {"exception revoke",
       "exception revoke ID --reason TEXT",
       "(approver or admin) end a requested or active exception now",
       "REQUESTED or ACTIVE -> REVOKED. Prints the exception.",
       {{"reason", "TEXT", "why (required; recorded with the exception)"}},
       {"table", "json"},
       1,
       1},
      {"exception list",
       "exception list [--state S] [--device ID]",
       "exceptions, oldest first",
       "Columns: ID STATE FOR (device or tag) CHECK EXPIRES REQUESTED-BY DECIDED-BY REASON.\n"
       "--device keeps the exceptions covering that device, by its id or one of its tags.",
       {{"state", "S", "only this state: requested, active, rejected, revoked, expired"},
        {"device", "ID", "only exceptions covering this device"},
        {"after-id", "N", "only exceptions with an id above N (the server answers 1000 at most)"}},
       {"table", "json", "csv"},
       0,
       0},
      {"help",
       "help [COMMAND]",
       "the usage, or one command's usage and flags",
       "",
       {},
       {"table"},
       0,
       2},
  };
  return kCommands;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The closest candidate when it is plausibly a typo, else "".
std::string Suggest(std::string_view typed, const std::vector<std::string_view>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (auto c : candidates) {
    size_t d = EditDistance(typed, c);
    if (d < best_d) best_d = d, best = std::string(c);
  }
  return best_d <= std::max<size_t>(1, typed.size() / 3) ? best : "";
}

std::string HelpHint(const CommandInfo* cmd) {
  return cmd ? "run 'vigilctl " + std::string(cmd->name) + " --help'" : "run 'vigilctl --help'";
}

std::string CommandList() {
  std::string out;
  std::set<std::string_view> seen;
  for (const auto& c : CommandsImpl()) {
    auto first = c.name.substr(0, c.name.find(' '));
    if (seen.insert(first).second) out += (out.empty() ? "" : " ") + std::string(first);
  }
  return out;
}

// Arity of every flag name any command knows; one name never means two things.
const std::map<std::string, bool, std::less<>>& TakesValue() {
  static const auto* kMap = [] {
    auto* m = new std::map<std::string, bool, std::less<>>();
    for (const auto& f : GlobalFlagsImpl()) (*m)[std::string(f.name)] = !f.value.empty();
    for (const auto& c : CommandsImpl()) {
      for (const auto& f : c.flags) (*m)[std::string(f.name)] = !f.value.empty();
    }
    return m;
  }();
  return *kMap;
}

const FlagInfo* FindFlag(const std::vector<FlagInfo>& flags, std::string_view name) {
  for (const auto& f : flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// `text` filled into lines of at most kHelpWidth columns, the first after `left`, the others
// indented to line up with it.
constexpr size_t kHelpWidth = 100;
std::string Wrapped(const std::string& left, std::string_view text) {
  std::string out = left, line;
  const std::string indent(left.size(), ' ');
  size_t col = left.size();
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(start, end - start);
    if (col > left.size() && col + 1 + word.size() > kHelpWidth) {
      out += "\n" + indent;
      col = indent.size();
    } else if (col > left.size()) {
      out += ' ';
      ++col;
    }
    out += word;
    col += word.size();
    start = end + 1;
  }
  return out + "\n";
}

std::string FlagsHelp(const std::vector<FlagInfo>& flags) {
  size_t width = 0;
  for (const auto& f : flags) width = std::max(width, f.name.size() + f.value.size() + 3);
  std::string out;
  for (const auto& f : flags) {
    std::string left = "  --" + std::string(f.name);
    if (!f.value.empty()) left += " " + std::string(f.value);
    left.resize(std::max(left.size(), width + 4), ' ');
    out += Wrapped(left, f.help);
  }
  return out;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's days_from_civil: days since 1970-01-01 in the proleptic Gregorian calendar.
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`.
std::optional<int> Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool LooksLikeDuration(std::string_view s) {
  return !s.empty() && s.front() >= '0' && s.front() <= '9' &&
         s.find_first_of("-:T") == std::string_view::npos;
}

Status ParseTimeRange(const Invocation& inv, int64_t now_ms, google::protobuf::Timestamp* since,
                      google::protobuf::Timestamp* until) {
  if (auto s = inv.Get("since")) {
    auto t = ParseTimeArg("since", *s, now_ms);
    if (!t.ok()) return t.status();
    *since = *t;
  }
  if (auto u = inv.Get("until")) {
    auto t = ParseTimeArg("until", *u, now_ms);
    if (!t.ok()) return t.status();
    *until = *t;
  }
  if (inv.Has("since") && inv.Has("until") &&
      (since->seconds() > until->seconds() ||
       (since->seconds() == until->seconds() && since->nanos() >= until->nanos()))) {
    return Status::InvalidArgument("--since (" + *inv.Get("since") + ") is not before --until (" +
                                   *inv.Get("until") + "): nothing can match");
  }
  return Status::Ok();
}

// A first word that names no command itself but starts several: "policy", "exception".
bool IsGroup(std::string_view word) {
  if (word.empty()) return false;
  bool prefix = false;
  for (const auto& c : CommandsImpl()) {
    if (c.name == word) return false;
    prefix = prefix || (c.name.size() > word.size() && c.name.substr(0, word.size()) == word &&
                        c.name[word.size()] == ' ');
  }
  return prefix;
}

std::vector<std::string_view> GroupCommands(std::string_view group) {
  std::vector<std::string_view> out;
  for (const auto& c : CommandsImpl()) {
    if (c.name.size() > group.size() && c.name.substr(0, group.size()) == group &&
        c.name[group.size()] == ' ') {
      out.push_back(c.name);
    }
  }
  return out;
}

// What a command's positional argument is, for arity errors.
std::string ArgNoun(const CommandInfo& cmd) {
  if (cmd.name == "policy diff") return "version";
  if (cmd.name.rfind("policy ", 0) == 0) return "change id";
  if (cmd.name.rfind("exception ", 0) == 0) return "exception id";
  return "device id";
}

// Flags a command cannot do without (beyond its arguments).
const std::map<std::string_view, std::vector<std::string_view>>& RequiredFlags() {
  static const auto* kMap = new std::map<std::string_view, std::vector<std::string_view>>{
      {"policy propose", {"file", "reason", "rollback-plan"}},
      {"policy reject", {"reason"}},
      {"policy rollback", {"to", "reason"}},
      {"exception request", {"check", "reason"}},
      {"exception reject", {"reason"}},
      {"exception revoke", {"reason"}},
  };
  return *kMap;
}

// Pairs of flags of which a command needs exactly one.
const std::map<std::string_view, std::vector<std::pair<std::string_view, std::string_view>>>&
ExclusiveFlags() {
  static const auto* kMap =
      new std::map<std::string_view, std::vector<std::pair<std::string_view, std::string_view>>>{
          {"exception request", {{"device", "tag"}, {"expires", "for"}}},
      };
  return *kMap;
}

bool IsBlank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::string FlagWithValue(const CommandInfo& cmd, std::string_view name) {
  const FlagInfo* f = FindFlag(cmd.flags, name);
  std::string out = "--" + std::string(name);
  if (f && !f->value.empty()) out += " " + std::string(f->value);
  return out;
}

}  // namespace

const std::vector<CommandInfo>& Commands() { return CommandsImpl(); }
const std::vector<FlagInfo>& GlobalFlags() { return GlobalFlagsImpl(); }

const CommandInfo* FindCommand(std::string_view name) {
  for (const auto& c : CommandsImpl()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string MainUsage() {
  std::string out = "usage: vigilctl [OPTIONS] COMMAND [ARGS] [OPTIONS]\n\nCommands:\n";
  size_t width = 0;
  for (const auto& c : CommandsImpl()) width = std::max(width, c.name.size());
  for (const auto& c : CommandsImpl()) {
    std::string left = "  " + std::string(c.name);
    left.resize(width + 4, ' ');
    out += left + std::string(c.summary) + "\n";
  }
  out += "\nOptions (before or after the command):\n" + FlagsHelp(GlobalFlagsImpl());
  out += "\nRun 'vigilctl COMMAND --help' (or 'vigilctl help COMMAND') for a command's flags.\n";
  out += "Statuses: " + std::string(kStatusHelp) + "\n\n" + std::string(kExitCodes);
  return out;
}

std::string CommandUsage(const CommandInfo& cmd) {
  std::string out =
      Wrapped("usage: vigilctl ", cmd.synopsis) + "\n" + std::string(cmd.summary) + "\n";
  if (!cmd.details.empty()) out += "\n" + std::string(cmd.details) + "\n";
  if (!cmd.flags.empty()) out += "\nFlags:\n" + FlagsHelp(cmd.flags);
  bool uses_when = false;
  for (const auto& f : cmd.flags) uses_when = uses_when || f.value == "WHEN";
  if (uses_when) out += "\n" + Wrapped("", kWhenHelp);
  out += "\nFormats (--format): ";
  for (size_t i = 0; i < cmd.formats.size(); ++i) {
    out += (i ? ", " : "") + std::string(cmd.formats[i]);
  }
  out +=
      cmd.name == "export" ? " (required)\n" : " (default " + std::string(cmd.formats[0]) + ")\n";
  out +=
      "Global options: --server --ca --token-file --insecure --timeout (see 'vigilctl --help')\n";
  out += "\n" + std::string(kExitCodes);
  return out;
}

std::string GroupUsage(std::string_view group) {
  std::string out = "usage: vigilctl " + std::string(group) + " SUBCOMMAND [ARGS] [OPTIONS]\n\n";
  for (auto name : GroupCommands(group)) {
    const CommandInfo* c = FindCommand(name);
    out += Wrapped("  vigilctl ", c->synopsis);
    out += Wrapped("      ", c->summary);
  }
  out += "\nRun 'vigilctl " + std::string(group) +
         " SUBCOMMAND --help' for a subcommand's flags and output.\n";
  out += "\n" + std::string(kExitCodes);
  return out;
}

std::optional<std::string> Invocation::Get(const std::string& name) const {
  auto it = flags.find(name);
  if (it == flags.end()) return std::nullopt;
  return it->second;
}

std::string Invocation::GetOr(const std::string& name, const std::string& fallback) const {
  auto v = Get(name);
  return v ? *v : fallback;
}

std::string Invocation::Format() const {
  if (auto f = Get("format")) return *f;
  return command && !command->formats.empty() && command->name != "export"
             ? std::string(command->formats[0])
             : "";
}

Result<Invocation> ParseCommandLine(const std::vector<std::string>& argv) {
  // Pass 1: split flags from positionals. Arity comes from the union of all flags so flags may
  // precede the command; whether a flag belongs to the command is checked once it is known.
  std::vector<std::pair<std::string, std::optional<std::string>>> given;
  std::vector<std::string> pos;
  const auto& arity = TakesValue();
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      pos.insert(pos.end(), argv.begin() + static_cast<std::ptrdiff_t>(i) + 1, argv.end());
      break;
    }
    if (arg == "-h") {
      given.emplace_back("help", std::nullopt);
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      pos.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto it = arity.find(name);
    if (it != arity.end() && it->second && !value) {
      if (i + 1 >= argv.size()) {
        return Status::InvalidArgument("--" + name + " needs a value");
      }
      value = argv[++i];
    }
    given.emplace_back(name, value);
  }

  Invocation inv;
  // Pass 2: the command (one or two words).
  std::vector<std::string> words = pos;
  bool help_command = !words.empty() && words[0] == "help";
  if (help_command) {
    inv.help = true;
    words.erase(words.begin());
  }
  size_t used = 0;
  if (!words.empty()) {
    const CommandInfo* cmd = nullptr;
    if (words.size() >= 2) cmd = FindCommand(words[0] + " " + words[1]);
    if (cmd) {
      used = 2;
    } else {
      cmd = FindCommand(words[0]);
      used = 1;
    }
    // "device ID": any second word is an argument; "help", "audit verify" are words.
    if (!cmd && IsGroup(words[0])) {
      bool wants_help = help_command;
      for (const auto& [name, value] : given) wants_help = wants_help || name == "help";
      if (wants_help && words.size() == 1) {
        inv.help = true;
        inv.group = words[0];
        return inv;
      }
      std::string subs;
      for (auto name : GroupCommands(words[0])) {
        subs += (subs.empty() ? "" : " ") + std::string(name.substr(words[0].size() + 1));
      }
      if (words.size() == 1) {
        return Status::InvalidArgument("'" + words[0] + "' needs a subcommand: " + subs +
                                       ". Run 'vigilctl " + words[0] + " --help'.");
      }
      std::string typed = words[0] + " " + words[1];
      std::string msg = "unknown command '" + typed + "'";
      if (auto sug = Suggest(typed, GroupCommands(words[0])); !sug.empty()) {
        msg += "; did you mean '" + sug + "'?";
      }
      return Status::InvalidArgument(msg + " Subcommands of '" + words[0] + "': " + subs +
                                     ". Run 'vigilctl " + words[0] + " --help'.");
    }
    if (!cmd) {
      std::vector<std::string_view> names;
      for (const auto& c : CommandsImpl()) names.push_back(c.name);
      std::string msg = "unknown command '" + words[0] + "'";
      if (auto s = Suggest(words[0], names); !s.empty()) msg += "; did you mean '" + s + "'?";
      return Status::InvalidArgument(msg + " Commands: " + CommandList() +
                                     ". Run 'vigilctl --help'.");
    }
    inv.command = cmd;
    inv.args.assign(words.begin() + static_cast<std::ptrdiff_t>(used), words.end());
  }
  if (help_command) {
    // `help device tag`: words beyond the command name are not arguments.
    if (inv.command && !inv.args.empty()) {
      return Status::InvalidArgument("help takes one command, e.g. 'vigilctl help export'");
    }
    return inv;
  }
  for (const auto& [name, value] : given) {
    if (name == "help") inv.help = true;
  }
  if (inv.help) return inv;  // help wins over any other mistake on the line

  // Pass 3: every flag belongs to the command (or is global), once, with a value.
  const CommandInfo* cmd = inv.command;
  std::vector<std::string_view> allowed;
  for (const auto& f : GlobalFlagsImpl()) allowed.push_back(f.name);
  if (cmd) {
    for (const auto& f : cmd->flags) allowed.push_back(f.name);
  }
  for (const auto& [name, value] : given) {
    bool global = FindFlag(GlobalFlagsImpl(), name) != nullptr;
    const FlagInfo* info =
        global ? FindFlag(GlobalFlagsImpl(), name) : (cmd ? FindFlag(cmd->flags, name) : nullptr);
    if (!info) {
      std::string msg = "unknown flag --" + name;
      if (cmd) msg += " for '" + std::string(cmd->name) + "'";
      if (auto s = Suggest(name, allowed); !s.empty()) msg += "; did you mean --" + s + "?";
      return Status::InvalidArgument(msg + " (" + HelpHint(cmd) + " for its flags)");
    }
    if (info->value.empty() && value) {
      return Status::InvalidArgument("--" + name + " takes no value");
    }
    if (!info->value.empty() && value.value_or("").empty()) {
      return Status::InvalidArgument("--" + name + " needs a value (" + HelpHint(cmd) + ")");
    }
    if (!inv.flags.emplace(name, value.value_or("true")).second) {
      return Status::InvalidArgument("--" + name + " is given twice; give it once");
    }
  }
  if (!cmd) {
    return Status::InvalidArgument("no command given; commands: " + CommandList() +
                                   ". Run 'vigilctl --help'.");
  }

  // Arguments.
  const std::string usage = "usage: vigilctl " + std::string(cmd->synopsis);
  if (inv.args.size() < cmd->min_args || inv.args.size() > cmd->max_args) {
    if (cmd->max_args == 0) {
      return Status::InvalidArgument("'" + std::string(cmd->name) + "' takes no arguments (got '" +
                                     inv.args[0] + "'); " + usage);
    }
    const std::string noun = ArgNoun(*cmd);
    if (cmd->min_args == 1 && cmd->max_args == 1) {
      return Status::InvalidArgument("'" + std::string(cmd->name) + "' needs exactly one " + noun +
                                     "; " + usage);
    }
    if (inv.args.size() > cmd->max_args) {
      return Status::InvalidArgument("'" + std::string(cmd->name) + "' takes at most " +
                                     std::to_string(cmd->max_args) + " arguments (got " +
                                     std::to_string(inv.args.size()) + "); " + usage);
    }
    return Status::InvalidArgument("'" + std::string(cmd->name) + "' needs a " + noun + "; " +
                                   usage);
  }
  if (cmd->name == "device tag") {
    if (inv.Has("clear") && inv.args.size() > 1) {
      return Status::InvalidArgument("--clear removes every tag: give no tags with it");
    }
    if (!inv.Has("clear") && inv.args.size() == 1) {
      return Status::InvalidArgument(
          "'device tag' needs the tags to set (they replace the current ones), or --clear to "
          "remove every tag; " +
          usage);
    }
  }
  if (cmd->name == "device revoke" && !inv.Has("reason")) {
    return Status::InvalidArgument(
        "device revoke needs --reason TEXT (it is recorded in the audit log)");
  }
  if (cmd->name == "device" && inv.Has("policy") && inv.Has("history")) {
    return Status::InvalidArgument(
        "--history is for the device's checks and history; --policy prints its policy instead: "
        "give one of them");
  }
  if (auto req = RequiredFlags().find(cmd->name); req != RequiredFlags().end()) {
    for (auto name : req->second) {
      if (!inv.Has(std::string(name))) {
        return Status::InvalidArgument("'" + std::string(cmd->name) + "' needs " +
                                       FlagWithValue(*cmd, name) + "; " + usage);
      }
    }
  }
  if (auto ex = ExclusiveFlags().find(cmd->name); ex != ExclusiveFlags().end()) {
    for (const auto& [a, b] : ex->second) {
      bool has_a = inv.Has(std::string(a)), has_b = inv.Has(std::string(b));
      if (has_a == has_b) {
        return Status::InvalidArgument("'" + std::string(cmd->name) + "' needs exactly one of " +
                                       FlagWithValue(*cmd, a) + " and " + FlagWithValue(*cmd, b) +
                                       (has_a ? " (both were given)" : "") + "; " + usage);
      }
    }
  }
  // A reason (or plan) of only spaces says nothing: refused like an empty one.
  for (const auto& [name, value] : inv.flags) {
    const FlagInfo* f = FindFlag(cmd->flags, name);
    if (f && f->value == "TEXT" && IsBlank(value)) {
      return Status::InvalidArgument("--" + name + " is blank; say why in words");
    }
  }

  // Format.
  if (auto f = inv.Get("format")) {
    if (std::find(cmd->formats.begin(), cmd->formats.end(), *f) == cmd->formats.end()) {
      std::string list;
      for (auto x : cmd->formats) list += (list.empty() ? "" : " ") + std::string(x);
      return Status::InvalidArgument("--format " + *f + " is not available for '" +
                                     std::string(cmd->name) + "'; one of: " + list);
    }
  } else if (cmd->name == "export") {
    return Status::InvalidArgument("export needs --format csv or --format json (JSON Lines); " +
                                   usage);
  }
  return inv;
}

// ---- values ---------------------------------------------------------------------------------

Result<v1::DeviceStatus> ParseDeviceStatus(std::string_view text) {
  std::string norm(text);
  for (char& c : norm) {
    c = c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  }
  v1::DeviceStatus st;
  if (!v1::DeviceStatus_Parse(norm, &st) || st == v1::DEVICE_STATUS_UNSPECIFIED) {
    return Status::InvalidArgument("unknown status '" + std::string(text) +
                                   "'; one of: " + std::string(kStatusHelp));
  }
  return st;
}

Result<uint64_t> ParseUnsigned(std::string_view flag, std::string_view text) {
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    return Status::InvalidArgument("--" + std::string(flag) + ": '" + std::string(text) +
                                   "' is not a whole number");
  }
  return out;
}

Result<uint64_t> ParsePositive(std::string_view flag, std::string_view text) {
  auto v = ParseUnsigned(flag, text);
  if (!v.ok()) return v;
  if (*v == 0) return Status::InvalidArgument("--" + std::string(flag) + " must be at least 1");
  return v;
}

Status ValidateTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 64) {
    return Status::InvalidArgument("tag '" + std::string(tag) + "' must be 1 to 64 characters");
  }
  for (char c : tag) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '=' || c == '-';
    if (!ok) {
      return Status::InvalidArgument("tag '" + std::string(tag) +
                                     "' may only contain A-Z a-z 0-9 . _ : = -");
    }
  }
  return Status::Ok();
}

Status ValidateCheckId(std::string_view check) {
  bool ok = !check.empty() && check.size() <= 64;
  for (char c : check) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!ok) {
    return Status::InvalidArgument("'" + std::string(check) +
                                   "' is not a check id (lower-case letters, digits and '_', e.g. "
                                   "screen_lock, password_policy, usb_storage)");
  }
  return Status::Ok();
}

Result<int64_t> ParseDuration(std::string_view text) {
  constexpr int64_t kMax = int64_t{200} * 366 * 86400;  // beyond any stored history
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not a duration: " + why +
                                   " (e.g. 90m, 12h, 7d, 2w, 1d12h)");
  };
  if (text.empty()) return bad("it is empty");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMax) return bad("too long");
      ++i;
    }
    if (i == start) return bad("a number must come before each unit");
    if (i == text.size()) return bad("the number needs a unit: s, m, h, d or w");
    int64_t unit = 0;
    switch (text[i]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      case 'w':
        unit = 7 * 86400;
        break;
      default:
        return bad(std::string("unknown unit '") + text[i] + "'; use s, m, h, d or w");
    }
    ++i;
    if (n > kMax / unit || total + n * unit > kMax) return bad("too long");
    total += n * unit;
  }
  return total;
}

Result<google::protobuf::Timestamp> ParseRfc3339(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("'" + std::string(s) + "' is not an RFC 3339 time: " + why +
                                   " (e.g. 2026-11-30T00:00:00Z or 2026-11-30)");
  };
  auto year = Digits(s, 0, 4), month = Digits(s, 5, 2), day = Digits(s, 8, 2);
  if (!year || !month || !day || s[4] != '-' || s[7] != '-') return bad("expected YYYY-MM-DD");
  if (*year < 1) return bad("year 0000 is out of range");
  if (*month < 1 || *month > 12) return bad("month " + std::to_string(*month) + " is out of range");
  if (*day < 1 || static_cast<unsigned>(*day) > DaysInMonth(*year, static_cast<unsigned>(*month))) {
    return bad("day " + std::to_string(*day) + " is not in that month");
  }
  int64_t secs =
      DaysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day)) * 86400;
  int32_t nanos = 0;
  if (s.size() > 10) {
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return bad("expected 'T' after the date");
    auto hh = Digits(s, 11, 2), mm = Digits(s, 14, 2), ss = Digits(s, 17, 2);
    if (!hh || !mm || !ss || s.size() < 19 || s[13] != ':' || s[16] != ':') {
      return bad("expected HH:MM:SS after the date");
    }
    if (*hh > 23 || *mm > 59 || *ss > 59) return bad("the time of day is out of range");
    secs += *hh * 3600 + *mm * 60 + *ss;
    size_t i = 19;
    if (i < s.size() && s[i] == '.') {
      size_t start = ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      size_t n = i - start;
      if (n == 0 || n > 9) return bad("a fraction of a second has 1 to 9 digits");
      nanos = *Digits(s, start, n);
      for (size_t k = n; k < 9; ++k) nanos *= 10;
    }
    if (i == s.size()) {
      return bad("it needs a time zone: end it with Z (UTC) or an offset such as +01:00");
    }
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      auto oh = Digits(s, i + 1, 2), om = Digits(s, i + 4, 2);
      if (!oh || !om || s.size() < i + 6 || s[i + 3] != ':' || *oh > 23 || *om > 59) {
        return bad("the offset must be +HH:MM or -HH:MM");
      }
      int64_t off = *oh * 3600 + *om * 60;
      secs += s[i] == '+' ? -off : off;  // local time minus its offset is UTC
      i += 6;
    } else {
      return bad("expected Z or +HH:MM after the time");
    }
    if (i != s.size()) return bad("unexpected '" + std::string(s.substr(i)) + "' at the end");
  }
  google::protobuf::Timestamp t;
  t.set_seconds(secs);
  t.set_nanos(nanos);
  return t;
}

Result<google::protobuf::Timestamp> ParseTimeArg(std::string_view flag, std::string_view text,
                                                 int64_t now_ms) {
  const std::string prefix = "--" + std::string(flag) + ": ";
  if (LooksLikeDuration(text)) {
    auto d = ParseDuration(text);
    if (!d.ok()) return d.status().Prefixed(prefix);
    int64_t ms = now_ms - *d * 1000;
    google::protobuf::Timestamp t;
    // Floor division: a time before 1970 still has nanos in [0, 1e9).
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    t.set_seconds(secs);
    t.set_nanos(static_cast<int32_t>((ms - secs * 1000) * 1000000));
    return t;
  }
  if (text.size() >= 10 && text[4] == '-') {
    auto t = ParseRfc3339(text);
    if (!t.ok()) return t.status().Prefixed(prefix);
    return t;
  }
  return Status::InvalidArgument(prefix + "'" + std::string(text) +
                                 "' is neither a duration ago (7d, 12h, 30m) nor an RFC 3339 "
                                 "time (2026-11-30T00:00:00Z) or date (2026-11-30)");
}

// ---- requests -------------------------------------------------------------------------------

Result<std::optional<uint64_t>> LimitFlag(const Invocation& inv) {
  auto v = inv.Get("limit");
  if (!v) return std::optional<uint64_t>();
  auto n = ParsePositive("limit", *v);
  if (!n.ok()) return n.status();
  return std::optional<uint64_t>(*n);
}

Result<v1::ListDevicesRequest> DevicesRequest(const Invocation& inv, int64_t now_ms) {
  v1::ListDevicesRequest req;
  if (auto s = inv.Get("status")) {
    auto st = ParseDeviceStatus(*s);
    if (!st.ok()) return st.status().Prefixed("--status: ");
    req.set_status(*st);
  }
  if (auto c = inv.Get("failing-check")) {
    if (auto st = ValidateCheckId(*c); !st.ok()) return st.Prefixed("--failing-check: ");
    req.set_failing_check(*c);
  }
  if (auto t = inv.Get("tag")) {
    if (auto st = ValidateTag(*t); !st.ok()) return st.Prefixed("--tag: ");
    req.set_tag(*t);
  }
  req.set_os(inv.GetOr("os", ""));
  if (auto w = inv.Get("not-seen-since")) {
    auto t = ParseTimeArg("not-seen-since", *w, now_ms);
    if (!t.ok()) return t.status();
    *req.mutable_not_seen_since() = *t;
  }
  if (auto lim = LimitFlag(inv); !lim.ok()) return lim.status();
  return req;
}

Result<v1::DeviceHistoryRequest> HistoryRequest(const Invocation& inv, int64_t now_ms) {
  v1::DeviceHistoryRequest req;
  req.set_device_id(inv.args.at(0));
  google::protobuf::Timestamp since, until;
  if (auto st = ParseTimeRange(inv, now_ms, &since, &until); !st.ok()) return st;
  if (inv.Has("since")) *req.mutable_since() = since;
  if (inv.Has("until")) *req.mutable_until() = until;
  if (auto lim = LimitFlag(inv); !lim.ok()) return lim.status();
  return req;
}

Result<v1::ListAlertsRequest> AlertsRequest(const Invocation& inv) {
  v1::ListAlertsRequest req;
  req.set_device_id(inv.GetOr("device", ""));
  if (auto a = inv.Get("after-id")) {
    auto n = ParseUnsigned("after-id", *a);
    if (!n.ok()) return n.status();
    req.set_after_id(*n);
  }
  if (auto lim = LimitFlag(inv); !lim.ok()) return lim.status();
  return req;
}

Result<v1::ExportRequest> ExportRequestFromFlags(const Invocation& inv, int64_t now_ms) {
  v1::ExportRequest req;
  google::protobuf::Timestamp since, until;
  if (auto st = ParseTimeRange(inv, now_ms, &since, &until); !st.ok()) return st;
  if (inv.Has("since")) *req.mutable_since() = since;
  if (inv.Has("until")) *req.mutable_until() = until;
  if (auto s = inv.Get("status")) {
    auto st = ParseDeviceStatus(*s);
    if (!st.ok()) return st.status().Prefixed("--status: ");
    req.set_status(*st);
  }
  if (auto t = inv.Get("tag")) {
    if (auto st = ValidateTag(*t); !st.ok()) return st.Prefixed("--tag: ");
    req.set_tag(*t);
  }
  return req;
}

Result<v1::SetDeviceTagsRequest> TagsRequest(const Invocation& inv) {
  v1::SetDeviceTagsRequest req;
  req.set_device_id(inv.args.at(0));
  std::set<std::string> seen;
  for (size_t i = 1; i < inv.args.size(); ++i) {
    const std::string& tag = inv.args[i];
    if (auto st = ValidateTag(tag); !st.ok()) return st;
    if (!seen.insert(tag).second) {
      return Status::InvalidArgument("tag '" + tag + "' is given twice");
    }
    req.add_tags(tag);
  }
  if (req.tags_size() > 32) {
    return Status::InvalidArgument("a device carries at most 32 tags (got " +
                                   std::to_string(req.tags_size()) + ")");
  }
  return req;
}

// ---- policy changes and exceptions ----------------------------------------------------------

Result<uint64_t> ParseId(std::string_view what, std::string_view text) {
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || out == 0) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(text) +
                                   "' is not a number from 1 (e.g. 12)");
  }
  return out;
}

Result<v1::ExceptionState> ParseExceptionState(std::string_view text) {
  std::string norm;
  for (char c : text) norm += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  if (norm.rfind("EXCEPTION_", 0) != 0) norm = "EXCEPTION_" + norm;
  v1::ExceptionState st;
  if (!v1::ExceptionState_Parse(norm, &st) || st == v1::EXCEPTION_STATE_UNSPECIFIED) {
    return Status::InvalidArgument("unknown exception state '" + std::string(text) +
                                   "'; one of: requested active rejected revoked expired");
  }
  return st;
}

Result<v1::GetPolicyRequest> PolicyShowRequest(const Invocation& inv) {
  v1::GetPolicyRequest req;
  if (auto v = inv.Get("version")) {
    auto n = ParsePositive("version", *v);
    if (!n.ok()) return n.status();
    req.set_version(*n);
  }
  return req;
}

Result<v1::ProposePolicyChangeRequest> ProposeRequest(const Invocation& inv,
                                                      const std::string& file_text) {
  v1::ProposePolicyChangeRequest req;
  auto set = collectors::ParsePolicySet(file_text, inv.GetOr("file", "--file"));
  if (!set.ok()) return set.status();
  *req.mutable_policy_set() = std::move(*set);
  req.set_reason(inv.GetOr("reason", ""));
  req.set_rollback_plan(inv.GetOr("rollback-plan", ""));
  if (IsBlank(req.reason()) || IsBlank(req.rollback_plan())) {
    return Status::InvalidArgument(
        "policy propose needs --reason TEXT and --rollback-plan TEXT, both in words");
  }
  return req;
}

Result<v1::PolicyChangeRequest> PolicyChangeRequestFromArgs(const Invocation& inv) {
  v1::PolicyChangeRequest req;
  auto id = ParseId("change id", inv.args.at(0));
  if (!id.ok()) return id.status();
  req.set_change_id(*id);
  auto lim = LimitFlag(inv);
  if (!lim.ok()) return lim.status();
  if (*lim) {
    constexpr uint64_t kMaxDevices = 10000;  // the server's limit on device_limit
    if (**lim > kMaxDevices) {
      return Status::InvalidArgument("--limit: at most " + std::to_string(kMaxDevices) +
                                     " devices are listed (got " + std::to_string(**lim) + ")");
    }
    req.set_device_limit(static_cast<uint32_t>(**lim));
  }
  return req;
}

Result<v1::PolicyDecisionRequest> PolicyDecisionRequestFromArgs(const Invocation& inv) {
  v1::PolicyDecisionRequest req;
  auto id = ParseId("change id", inv.args.at(0));
  if (!id.ok()) return id.status();
  req.set_change_id(*id);
  req.set_reason(inv.GetOr("reason", ""));
  return req;
}

Result<v1::RollbackPolicyRequest> RollbackRequest(const Invocation& inv) {
  v1::RollbackPolicyRequest req;
  auto to = ParsePositive("to", inv.GetOr("to", ""));
  if (!to.ok()) return to.status();
  req.set_to_version(*to);
  req.set_reason(inv.GetOr("reason", ""));
  return req;
}

Result<v1::DiffPolicyVersionsRequest> DiffRequest(const Invocation& inv) {
  v1::DiffPolicyVersionsRequest req;
  auto from = ParseId("version", inv.args.at(0));
  if (!from.ok()) return from.status();
  req.set_from_version(*from);
  if (inv.args.size() > 1) {
    auto to = ParseId("version", inv.args[1]);
    if (!to.ok()) return to.status();
    req.set_to_version(*to);
  }
  return req;
}

Result<v1::RequestExceptionRequest> ExceptionRequestFromFlags(const Invocation& inv,
                                                              int64_t now_ms) {
  v1::RequestExceptionRequest req;
  if (auto d = inv.Get("device")) req.set_device_id(*d);
  if (auto t = inv.Get("tag")) {
    if (auto st = ValidateTag(*t); !st.ok()) return st.Prefixed("--tag: ");
    req.set_tag(*t);
  }
  if (req.device_id().empty() == req.tag().empty()) {
    return Status::InvalidArgument("exception request needs exactly one of --device and --tag");
  }
  const std::string check = inv.GetOr("check", "");
  if (auto st = ValidateCheckId(check); !st.ok()) return st.Prefixed("--check: ");
  req.set_check(check);
  req.set_reason(inv.GetOr("reason", ""));
  if (IsBlank(req.reason())) return Status::InvalidArgument("exception request needs --reason");

  // Whole milliseconds from now; the expiry must fall in (now, now + 366 days].
  constexpr int64_t kMaxAheadMs = int64_t{366} * 86400 * 1000;
  if (auto e = inv.Get("expires")) {
    auto t = ParseRfc3339(*e);
    if (!t.ok()) return t.status().Prefixed("--expires: ");
    int64_t expires_ms = t->seconds() * 1000 + t->nanos() / 1000000;
    if (expires_ms <= now_ms) {
      return Status::InvalidArgument("--expires: '" + *e + "' is not in the future");
    }
    if (expires_ms - now_ms > kMaxAheadMs) {
      return Status::InvalidArgument("--expires: '" + *e +
                                     "' is more than 366 days from now; ask for less and renew");
    }
    *req.mutable_expires_at() = *t;
  } else {
    const std::string f = inv.GetOr("for", "");
    auto d = ParseDuration(f);
    if (!d.ok()) return d.status().Prefixed("--for: ");
    if (*d == 0) return Status::InvalidArgument("--for: must be longer than 0s");
    if (*d * 1000 > kMaxAheadMs) {
      return Status::InvalidArgument("--for: '" + f +
                                     "' is more than 366 days; ask for less and renew");
    }
    int64_t expires_ms = now_ms + *d * 1000;
    int64_t secs = expires_ms / 1000;  // after 1970: no negative division
    req.mutable_expires_at()->set_seconds(secs);
    req.mutable_expires_at()->set_nanos(static_cast<int32_t>((expires_ms - secs * 1000) * 1000000));
  }
  return req;
}

Result<v1::ExceptionDecisionRequest> ExceptionDecisionRequestFromArgs(const Invocation& inv) {
  v1::ExceptionDecisionRequest req;
  auto id = ParseId("exception id", inv.args.at(0));
  if (!id.ok()) return id.status();
  req.set_exception_id(*id);
  req.set_reason(inv.GetOr("reason", ""));
  return req;
}

Result<v1::ListExceptionsRequest> ListExceptionsRequestFromFlags(const Invocation& inv) {
  v1::ListExceptionsRequest req;
  if (auto s = inv.Get("state")) {
    auto st = ParseExceptionState(*s);
    if (!st.ok()) return st.status().Prefixed("--state: ");
    req.set_state(*st);
  }
  req.set_device_id(inv.GetOr("device", ""));
  if (auto a = inv.Get("after-id")) {
    auto n = ParseUnsigned("after-id", *a);
    if (!n.ok()) return n.status();
    req.set_after_id(*n);
  }
  return req;
}

}  // namespace vigil::ctl

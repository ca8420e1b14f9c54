// vigilctl's pure parts: command-line parsing and flag validation, time and duration parsing,
// CSV quoting, table layout, export rows and the readable evidence; the policy change and
// exception commands' requests and output; paging against an in-process fake FleetService.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "common/files.h"
#include "common/temp_dir.h"
#include "proto/json.h"
#include "server/vigilctl_cli.h"
#include "server/vigilctl_fetch.h"
#include "server/vigilctl_output.h"

namespace vigil::ctl {
namespace {

// 2026-11-30T00:00:00Z
constexpr int64_t kNowMs = 1795996800000;

Invocation Parse(std::vector<std::string> args) {
  auto inv = ParseCommandLine(args);
  REQUIRE_MESSAGE(inv.ok(), inv.status().message());
  return *inv;
}

std::string ParseError(std::vector<std::string> args) {
  auto inv = ParseCommandLine(args);
  REQUIRE(!inv.ok());
  CHECK(inv.status().code() == Status::Code::kInvalidArgument);
  return inv.status().message();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string Iso(const google::protobuf::Timestamp& t) { return FormatTimeExact(t); }

// ---- CSV --------------------------------------------------------------------------------------

TEST_CASE("csv: fields are quoted only when needed, quotes doubled, records end in CRLF") {
  CHECK(CsvField("plain") == "plain");
  CHECK(CsvField("") == "");
  CHECK(CsvField("a,b") == "\"a,b\"");
  CHECK(CsvField("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(CsvField("two\nlines") == "\"two\nlines\"");
  CHECK(CsvField("cr\rhere") == "\"cr\rhere\"");
  CHECK(CsvField("\"") == "\"\"\"\"");
  CHECK(CsvField(" spaced ") == " spaced ");  // spaces are data in RFC 4180
  CHECK(CsvRecord({"a", "b,c", ""}) == "a,\"b,c\",\r\n");
  Table t{{"h1", "h2"}, {{"x", "y\"z"}, {"1", "2"}}};
  CHECK(FormatCsv(t) == "h1,h2\r\nx,\"y\"\"z\"\r\n1,2\r\n");
}

// ---- table ------------------------------------------------------------------------------------

TEST_CASE("table: columns sized to the widest cell, two spaces apart, no trailing spaces") {
  Table t{{"ID", "NAME", "NOTE"}, {{"1", "alpha", "x"}, {"1000", "b", ""}}};
  CHECK(FormatTable(t) ==
        "ID    NAME   NOTE\n"
        "1     alpha  x\n"
        "1000  b\n");
}

TEST_CASE("table: width counts characters, not bytes; short rows are fine") {
  Table t{{"A", "B"}, {{"h\xc3\xa9llo", "1"}, {"x"}}};
  CHECK(FormatTable(t) ==
        "A      B\n"
        "h\xc3\xa9llo  1\n"
        "x\n");
}

TEST_CASE("table: control characters, bad UTF-8 and bidi overrides from devices are escaped") {
  CHECK(Sanitize("ok") == "ok");
  CHECK(Sanitize("a\nb\tc") == "a\\nb\\tc");
  CHECK(Sanitize("\x1b[31mred") == "\\x1b[31mred");
  CHECK(Sanitize("bad\xff") == "bad\\xff");
  CHECK(Sanitize("\xe2\x80\xae"
                 "evil") == "\\u202eevil");  // RIGHT-TO-LEFT OVERRIDE
  CHECK(Sanitize("\xc2\x9b") == "\\u009b");  // C1 CSI
  CHECK(Sanitize("caf\xc3\xa9") == "caf\xc3\xa9");
  Table t{{"HOST"}, {{"evil\x1b]0;title\x07"}}};
  CHECK(FormatTable(t) == "HOST\nevil\\x1b]0;title\\x07\n");
}

// ---- durations and times ----------------------------------------------------------------------

TEST_CASE("durations: units, sums, and the mistakes people make") {
  CHECK(*ParseDuration("90s") == 90);
  CHECK(*ParseDuration("15m") == 900);
  CHECK(*ParseDuration("12h") == 43200);
  CHECK(*ParseDuration("7d") == 604800);
  CHECK(*ParseDuration("2w") == 1209600);
  CHECK(*ParseDuration("1d12h") == 129600);
  CHECK(*ParseDuration("0s") == 0);
  CHECK(Contains(ParseDuration("7").status().message(), "needs a unit"));
  CHECK(Contains(ParseDuration("7y").status().message(), "unknown unit 'y'"));
  CHECK(Contains(ParseDuration("d").status().message(), "a number must come before"));
  CHECK(!ParseDuration("").ok());
  CHECK(!ParseDuration("7d ").ok());
  CHECK(Contains(ParseDuration("99999999999999999999d").status().message(), "too long"));
}

TEST_CASE("RFC 3339: UTC, offsets, fractions, dates") {
  CHECK(Iso(*ParseRfc3339("2026-11-30T00:00:00Z")) == "2026-11-30T00:00:00Z");
  CHECK(ParseRfc3339("2026-11-30T00:00:00Z")->seconds() == kNowMs / 1000);
  CHECK(Iso(*ParseRfc3339("2026-11-30")) == "2026-11-30T00:00:00Z");
  CHECK(Iso(*ParseRfc3339("2026-11-30T09:15:00+01:00")) == "2026-11-30T08:15:00Z");
  CHECK(Iso(*ParseRfc3339("2026-11-30T23:30:00-02:30")) == "2026-12-01T02:00:00Z");
  CHECK(Iso(*ParseRfc3339("2026-11-30t00:00:00.5z")) == "2026-11-30T00:00:00.500Z");
  CHECK(ParseRfc3339("2026-11-30T00:00:00.123456789Z")->nanos() == 123456789);
  CHECK(Iso(*ParseRfc3339("2024-02-29T12:00:00Z")) == "2024-02-29T12:00:00Z");
  CHECK(ParseRfc3339("1970-01-01T00:00:00Z")->seconds() == 0);
}

TEST_CASE("RFC 3339: bad input is refused with the reason") {
  CHECK(Contains(ParseRfc3339("2026-13-01").status().message(), "month 13"));
  CHECK(Contains(ParseRfc3339("2026-02-29").status().message(), "day 29"));
  CHECK(Contains(ParseRfc3339("2026-11-30T00:00:00").status().message(), "time zone"));
  CHECK(Contains(ParseRfc3339("2026-11-30T24:00:00Z").status().message(), "out of range"));
  CHECK(Contains(ParseRfc3339("2026-11-30T00:00Z").status().message(), "HH:MM:SS"));
  CHECK(Contains(ParseRfc3339("2026-11-30T00:00:00+0100").status().message(), "+HH:MM"));
  CHECK(Contains(ParseRfc3339("2026-11-30T00:00:00Zjunk").status().message(), "unexpected"));
  CHECK(Contains(ParseRfc3339("2026-11-30T00:00:00.Z").status().message(), "fraction"));
  CHECK(!ParseRfc3339("26-11-30").ok());
  CHECK(!ParseRfc3339("2026/11/30").ok());
}

TEST_CASE("time arguments: a duration is that long before now, else RFC 3339") {
  auto week = ParseTimeArg("since", "7d", kNowMs);
  REQUIRE(week.ok());
  CHECK(Iso(*week) == "2026-11-23T00:00:00Z");
  CHECK(Iso(*ParseTimeArg("since", "2026-11-01T00:00:00Z", kNowMs)) == "2026-11-01T00:00:00Z");
  auto bad = ParseTimeArg("not-seen-since", "yesterday", kNowMs);
  REQUIRE(!bad.ok());
  CHECK(Contains(bad.status().message(), "--not-seen-since"));
  CHECK(Contains(bad.status().message(), "neither a duration"));
  CHECK(Contains(ParseTimeArg("until", "2026-11-31", kNowMs).status().message(), "--until: "));
  CHECK(Contains(ParseTimeArg("until", "3x", kNowMs).status().message(), "unknown unit"));
}

TEST_CASE("times print as RFC 3339 UTC; unset is empty") {
  google::protobuf::Timestamp t;
  CHECK(FormatTime(t) == "");
  t.set_seconds(kNowMs / 1000);
  t.set_nanos(250000000);
  CHECK(FormatTime(t) == "2026-11-30T00:00:00Z");
  CHECK(FormatTimeExact(t) == "2026-11-30T00:00:00.250Z");
  t.set_nanos(1000);
  CHECK(FormatTimeExact(t) == "2026-11-30T00:00:00.000001Z");
}

// ---- command line -----------------------------------------------------------------------------

TEST_CASE("command line: global flags before or after the command, = values") {
  auto inv = Parse({"--server", "h:1", "devices", "--status=NON_COMPLIANT", "--format", "csv"});
  CHECK(inv.command->name == "devices");
  CHECK(inv.GetOr("server", "") == "h:1");
  CHECK(inv.GetOr("status", "") == "NON_COMPLIANT");
  CHECK(inv.Format() == "csv");
  CHECK(Parse({"devices"}).Format() == "table");
  auto dev = Parse({"device", "dev-1", "--history", "5"});
  CHECK(dev.command->name == "device");
  CHECK(dev.args == std::vector<std::string>{"dev-1"});
  auto tag = Parse({"device", "tag", "dev-1", "laptop", "team-eng"});
  CHECK(tag.command->name == "device tag");
  CHECK(tag.args == std::vector<std::string>{"dev-1", "laptop", "team-eng"});
  CHECK(Parse({"audit", "verify"}).command->name == "audit verify");
  CHECK(Parse({"--", "device", "--weird-id"}).args == std::vector<std::string>{"--weird-id"});
}

TEST_CASE("command line: help for every command, before checking anything else") {
  auto h = Parse({"devices", "--help"});
  CHECK(h.help);
  CHECK(h.command->name == "devices");
  auto h2 = Parse({"help", "export"});
  CHECK(h2.help);
  CHECK(h2.command->name == "export");
  CHECK(Parse({"help", "device", "tag"}).command->name == "device tag");
  CHECK(Parse({"help"}).command == nullptr);
  CHECK(Parse({"--help"}).help);
  CHECK(Parse({"devices", "--bogus", "-h"}).help);
  for (const auto& c : Commands()) {
    std::string usage = CommandUsage(c);
    CHECK(Contains(usage, "usage: vigilctl " + std::string(c.name)));
    size_t longest = 0;
    for (size_t at = 0, nl; at < usage.size(); at = nl + 1) {
      nl = usage.find('\n', at);
      longest = std::max(longest, nl - at);
    }
    CHECK_MESSAGE(longest <= 100, c.name);
    CHECK(Contains(usage, "Exit codes: 0 success"));
    for (const auto& f : c.flags) CHECK(Contains(usage, "--" + std::string(f.name)));
  }
  std::string main_usage = MainUsage();
  for (const auto& c : Commands()) CHECK(Contains(main_usage, std::string(c.name)));
  CHECK(Contains(main_usage, "5 the audit log does not verify"));
}

TEST_CASE("command line: a flag name means the same thing in every command") {
  std::map<std::string, bool> arity;
  for (const auto& f : GlobalFlags()) arity[std::string(f.name)] = f.value.empty();
  for (const auto& c : Commands()) {
    CHECK(!c.formats.empty());
    for (const auto& f : c.flags) {
      auto [it, inserted] = arity.emplace(std::string(f.name), f.value.empty());
      CHECK_MESSAGE(it->second == f.value.empty(), f.name);
    }
  }
}

TEST_CASE("command line: mistakes say what to do") {
  CHECK(Contains(ParseError({"devics"}), "unknown command 'devics'; did you mean 'devices'?"));
  CHECK(Contains(ParseError({"devics"}), "Commands: devices device history"));
  std::string flag = ParseError({"devices", "--stauts", "X"});
  CHECK(Contains(flag, "unknown flag --stauts for 'devices'; did you mean --status?"));
  CHECK(Contains(flag, "vigilctl devices --help"));
  CHECK(Contains(ParseError({"devices", "--history", "3"}), "unknown flag --history"));
  CHECK(Contains(ParseError({"devices", "--limit"}), "--limit needs a value"));
  CHECK(Contains(ParseError({"devices", "--os="}), "--os needs a value"));
  CHECK(Contains(ParseError({"devices", "--tag", "a", "--tag", "b"}), "given twice"));
  CHECK(Contains(ParseError({"devices", "--insecure=yes"}), "takes no value"));
  CHECK(Contains(ParseError({"devices", "extra"}), "takes no arguments"));
  CHECK(Contains(ParseError({"device"}), "needs exactly one device id"));
  CHECK(Contains(ParseError({"device", "a", "b"}), "needs exactly one device id"));
  CHECK(Contains(ParseError({"device", "revoke", "dev-1"}), "--reason"));
  CHECK(Contains(ParseError({"device", "tag", "dev-1"}), "--clear"));
  CHECK(Contains(ParseError({"device", "tag", "dev-1", "x", "--clear"}), "give no tags"));
  CHECK(Contains(ParseError({"device", "dev-1", "--format", "csv"}),
                 "--format csv is not available for 'device'; one of: table json"));
  CHECK(Contains(ParseError({"devices", "--format", "yaml"}), "one of: table json csv"));
  CHECK(Contains(ParseError({"export"}), "export needs --format csv or --format json"));
  CHECK(Contains(ParseError({"export", "--format", "table"}), "one of: csv json"));
  CHECK(Contains(ParseError({}), "no command given"));
  CHECK(Contains(ParseError({"help", "nope"}), "unknown command 'nope'"));
}

TEST_CASE("values: statuses, limits, tags and check ids") {
  CHECK(*ParseDeviceStatus("NON_COMPLIANT") == v1::NON_COMPLIANT);
  CHECK(*ParseDeviceStatus("non-compliant") == v1::NON_COMPLIANT);
  CHECK(*ParseDeviceStatus("stale") == v1::STALE);
  CHECK(ParseDeviceStatus("NONCOMPLIANT").status().message() ==
        "unknown status 'NONCOMPLIANT'; one of: COMPLIANT NON_COMPLIANT UNKNOWN STALE TAMPERED "
        "EXCEPTED PENDING REVOKED");
  CHECK(!ParseDeviceStatus("DEVICE_STATUS_UNSPECIFIED").ok());
  CHECK(*ParsePositive("limit", "25") == 25);
  CHECK(Contains(ParsePositive("limit", "0").status().message(), "at least 1"));
  CHECK(Contains(ParsePositive("limit", "-3").status().message(), "not a whole number"));
  CHECK(Contains(ParsePositive("limit", "10x").status().message(), "--limit"));
  CHECK(*ParseUnsigned("after-id", "0") == 0);
  CHECK(ValidateTag("team-eng").ok());
  CHECK(ValidateTag("env=prod:eu.1_a").ok());
  CHECK(!ValidateTag("").ok());
  CHECK(!ValidateTag(std::string(65, 'a')).ok());
  CHECK(Contains(ValidateTag("has space").message(), "A-Z a-z 0-9"));
  CHECK(ValidateCheckId("usb_storage").ok());
  CHECK(!ValidateCheckId("USB").ok());
}

TEST_CASE("requests: devices filters become the request") {
  auto inv = Parse({"devices", "--status", "stale", "--os", "linux", "--failing-check",
                    "screen_lock", "--tag", "laptop", "--not-seen-since", "12h", "--limit", "5"});
  auto req = DevicesRequest(inv, kNowMs);
  REQUIRE(req.ok());
  CHECK(req->status() == v1::STALE);
  CHECK(req->os() == "linux");
  CHECK(req->failing_check() == "screen_lock");
  CHECK(req->tag() == "laptop");
  CHECK(Iso(req->not_seen_since()) == "2026-11-29T12:00:00Z");
  CHECK(**LimitFlag(inv) == 5);
  CHECK(!LimitFlag(Parse({"devices"}))->has_value());
  auto bad = DevicesRequest(Parse({"devices", "--status", "NONCOMPLIANT"}), kNowMs);
  CHECK(Contains(bad.status().message(), "--status: unknown status 'NONCOMPLIANT'; one of:"));
  CHECK(!DevicesRequest(Parse({"devices", "--tag", "no spaces"}), kNowMs).ok());
  CHECK(!DevicesRequest(Parse({"devices", "--failing-check", "Screen"}), kNowMs).ok());
  CHECK(!DevicesRequest(Parse({"devices", "--limit", "0"}), kNowMs).ok());
  CHECK(!DevicesRequest(Parse({"devices", "--not-seen-since", "soon"}), kNowMs).ok());
}

TEST_CASE("requests: history, alerts, export, tags") {
  auto h =
      HistoryRequest(Parse({"history", "dev-1", "--since", "2026-11-01", "--until", "1d"}), kNowMs);
  REQUIRE(h.ok());
  CHECK(h->device_id() == "dev-1");
  CHECK(Iso(h->since()) == "2026-11-01T00:00:00Z");
  CHECK(Iso(h->until()) == "2026-11-29T00:00:00Z");
  CHECK(!HistoryRequest(Parse({"history", "dev-1"}), kNowMs)->has_since());
  auto backwards =
      HistoryRequest(Parse({"history", "dev-1", "--since", "1d", "--until", "2d"}), kNowMs);
  CHECK(Contains(backwards.status().message(), "is not before --until"));

  auto a = AlertsRequest(Parse({"alerts", "--device", "dev-2", "--after-id", "40"}));
  REQUIRE(a.ok());
  CHECK(a->device_id() == "dev-2");
  CHECK(a->after_id() == 40);
  CHECK(!AlertsRequest(Parse({"alerts", "--after-id", "x"})).ok());

  auto e = ExportRequestFromFlags(Parse({"export", "--format", "csv", "--since", "30d", "--status",
                                         "compliant", "--tag", "pci"}),
                                  kNowMs);
  REQUIRE(e.ok());
  CHECK(Iso(e->since()) == "2026-10-31T00:00:00Z");
  CHECK(!e->has_until());
  CHECK(e->status() == v1::COMPLIANT);
  CHECK(e->tag() == "pci");

  auto t = TagsRequest(Parse({"device", "tag", "dev-1", "laptop", "team-eng"}));
  REQUIRE(t.ok());
  CHECK(t->device_id() == "dev-1");
  CHECK(t->tags_size() == 2);
  CHECK(TagsRequest(Parse({"device", "tag", "dev-1", "--clear"}))->tags_size() == 0);
  CHECK(Contains(TagsRequest(Parse({"device", "tag", "d", "a", "a"})).status().message(),
                 "given twice"));
  CHECK(!TagsRequest(Parse({"device", "tag", "d", "b@d"})).ok());
  std::vector<std::string> many = {"device", "tag", "d"};
  for (int i = 0; i < 33; ++i) many.push_back("t" + std::to_string(i));
  CHECK(Contains(TagsRequest(Parse(many)).status().message(), "at most 32"));
}

// ---- policy changes and exceptions: command line and requests ---------------------------------

TEST_CASE("policy commands: groups, subcommands and their help") {
  CHECK(Contains(ParseError({"policy"}), "'policy' needs a subcommand: show propose preview"));
  CHECK(Contains(ParseError({"exception"}), "'exception' needs a subcommand: request approve"));
  CHECK(Contains(ParseError({"policy", "shwo"}),
                 "unknown command 'policy shwo'; did you mean 'policy show'?"));
  auto group = Parse({"policy", "--help"});
  CHECK(group.help);
  CHECK(group.command == nullptr);
  CHECK(group.group == "policy");
  CHECK(Parse({"help", "exception"}).group == "exception");
  CHECK(Parse({"help", "policy", "preview"}).command->name == "policy preview");
  std::string usage = GroupUsage("policy");
  CHECK(Contains(usage, "vigilctl policy propose --file F --reason TEXT --rollback-plan TEXT\n"));
  CHECK(Contains(usage, "vigilctl policy diff V1 [V2]\n"));
  CHECK(!Contains(usage, "exception request"));
  CHECK(Contains(GroupUsage("exception"), "vigilctl exception list [--state S] [--device ID]"));
  CHECK(Contains(MainUsage(), "3 not found (device, policy change or version, exception)"));
  CHECK(Contains(ParseError({"devics"}),
                 "Commands: devices device history summary alerts export "
                 "audit stats policy exception help."));
}

TEST_CASE("policy show, diff: versions are whole numbers from 1") {
  CHECK(!PolicyShowRequest(Parse({"policy", "show"}))->version());
  CHECK(PolicyShowRequest(Parse({"policy", "show", "--version", "3"}))->version() == 3);
  CHECK(Contains(PolicyShowRequest(Parse({"policy", "show", "--version", "0"})).status().message(),
                 "--version must be at least 1"));
  CHECK(Contains(PolicyShowRequest(Parse({"policy", "show", "--version", "v3"})).status().message(),
                 "--version: 'v3' is not a whole number"));
  CHECK(Contains(ParseError({"policy", "show", "3"}), "'policy show' takes no arguments"));
  CHECK(Contains(ParseError({"policy", "show", "--format", "csv"}), "one of: table json"));

  auto d = DiffRequest(Parse({"policy", "diff", "2"}));
  REQUIRE(d.ok());
  CHECK(d->from_version() == 2);
  CHECK(d->to_version() == 0);  // the current version
  auto d2 = DiffRequest(Parse({"policy", "diff", "2", "5"}));
  CHECK(d2->from_version() == 2);
  CHECK(d2->to_version() == 5);
  CHECK(Contains(ParseError({"policy", "diff"}),
                 "'policy diff' needs a version; usage: vigilctl "
                 "policy diff V1 [V2]"));
  CHECK(Contains(ParseError({"policy", "diff", "1", "2", "3"}), "takes at most 2 arguments"));
  CHECK(DiffRequest(Parse({"policy", "diff", "0"})).status().message() ==
        "version '0' is not a number from 1 (e.g. 12)");
  CHECK(Contains(DiffRequest(Parse({"policy", "diff", "1", "-2"})).status().message(),
                 "version '-2'"));
}

TEST_CASE("policy propose: file, reason and rollback plan are required; the file is checked here") {
  const std::vector<std::string> base = {"policy",          "propose",
                                         "--file",          "p.json",
                                         "--reason",        "stricter screen lock",
                                         "--rollback-plan", "vigilctl policy rollback --to 3"};
  for (const std::string flag : {"file", "reason", "rollback-plan"}) {
    std::vector<std::string> args;
    for (size_t i = 0; i < base.size(); ++i) {
      if (base[i] == "--" + flag) {
        ++i;  // drop the flag and its value
        continue;
      }
      args.push_back(base[i]);
    }
    CAPTURE(flag);
    CHECK(Contains(ParseError(args), "'policy propose' needs --" + flag));
  }
  CHECK(Contains(
      ParseError({"policy", "propose", "--file", "p.json", "--reason=", "--rollback-plan", "x"}),
      "--reason needs a value"));
  CHECK(Contains(ParseError({"policy", "propose", "--file", "p.json", "--reason", "  ",
                             "--rollback-plan", "x"}),
                 "--reason is blank"));
  CHECK(Contains(ParseError({"policy", "propose", "--file", "p.json", "--reason", "r",
                             "--rollback-plan", "\t"}),
                 "--rollback-plan is blank"));

  auto inv = Parse(base);
  auto req = ProposeRequest(
      inv, R"({"defaultPolicy": {"screenLock": {"maxIdleSeconds": 600, "requirePassword": true}},
               "overrides": [{"name": "kiosk", "tag": "kiosk",
                              "policy": {"usbStorage": {"mode": "BLOCKED"}}}]})");
  REQUIRE_MESSAGE(req.ok(), req.status().message());
  CHECK(req->reason() == "stricter screen lock");
  CHECK(req->rollback_plan() == "vigilctl policy rollback --to 3");
  CHECK(req->policy_set().default_policy().screen_lock().max_idle_seconds() == 600);
  CHECK(req->policy_set().default_policy().checkin_window_seconds() == 3600);  // canonical form
  REQUIRE(req->policy_set().overrides_size() == 1);
  CHECK(req->policy_set().overrides(0).name() == "kiosk");
  // A plain Policy document is a set with only a default.
  CHECK(ProposeRequest(inv, R"({"password": {"minLength": 12}})")
            ->policy_set()
            .default_policy()
            .password()
            .min_length() == 12);

  // Errors name the file, the override and the field.
  auto bad = ProposeRequest(inv, R"({"defaultPolicy": {"screenLock": {"maxIdleSeconds": 0}}})");
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == Status::Code::kInvalidArgument);
  CHECK(Contains(bad.status().message(),
                 "p.json: defaultPolicy: screenLock.maxIdleSeconds: must "
                 "be 1..86400"));
  auto bad_override = ProposeRequest(inv, R"({"defaultPolicy": {}, "overrides": [
      {"name": "kiosk", "tag": "kiosk", "policy": {"usbStorage": {"mode": "OPEN"}}}]})");
  CHECK(Contains(bad_override.status().message(),
                 "p.json: overrides[0] (kiosk): usbStorage.mode: invalid value"));
  auto unknown = ProposeRequest(inv, R"({"defaultPolicy": {"screenLok": {}}})");
  CHECK(unknown.status().message().rfind("p.json: ", 0) == 0);
  CHECK(Contains(unknown.status().message(), "screenLok"));
  CHECK(ProposeRequest(inv, "{").status().message().rfind("p.json: ", 0) == 0);
}

TEST_CASE("policy preview, approve, reject, apply, change, review, rollback: requests") {
  auto p = PolicyChangeRequestFromArgs(Parse({"policy", "preview", "12", "--limit", "500"}));
  REQUIRE(p.ok());
  CHECK(p->change_id() == 12);
  CHECK(p->device_limit() == 500);
  CHECK(PolicyChangeRequestFromArgs(Parse({"policy", "preview", "12"}))->device_limit() == 0);
  CHECK(Contains(PolicyChangeRequestFromArgs(Parse({"policy", "preview", "12", "--limit", "10001"}))
                     .status()
                     .message(),
                 "--limit: at most 10000"));
  CHECK(Contains(PolicyChangeRequestFromArgs(Parse({"policy", "preview", "12", "--limit", "0"}))
                     .status()
                     .message(),
                 "--limit must be at least 1"));
  CHECK(Contains(
      PolicyChangeRequestFromArgs(Parse({"policy", "preview", "twelve"})).status().message(),
      "change id 'twelve' is not a number from 1"));
  CHECK(
      Contains(ParseError({"policy", "preview"}), "'policy preview' needs exactly one change id"));
  CHECK(Contains(ParseError({"policy", "apply", "1", "2"}), "needs exactly one change id"));
  CHECK(Contains(ParseError({"policy", "apply", "1", "--limit", "3"}), "unknown flag --limit"));
  for (const std::string sub : {"apply", "change", "review"}) {
    auto r = PolicyChangeRequestFromArgs(Parse({"policy", sub, "7"}));
    REQUIRE(r.ok());
    CHECK(r->change_id() == 7);
  }

  auto a = PolicyDecisionRequestFromArgs(Parse({"policy", "approve", "12"}));
  REQUIRE(a.ok());
  CHECK(a->change_id() == 12);
  CHECK(a->reason().empty());
  CHECK(PolicyDecisionRequestFromArgs(Parse({"policy", "approve", "12", "--reason", "ok"}))
            ->reason() == "ok");
  CHECK(Contains(ParseError({"policy", "reject", "12"}), "'policy reject' needs --reason TEXT"));
  auto r =
      PolicyDecisionRequestFromArgs(Parse({"policy", "reject", "12", "--reason", "too strict"}));
  CHECK(r->reason() == "too strict");
  CHECK(Contains(ParseError({"policy", "reject", "12", "--reason", " "}), "--reason is blank"));

  auto rb = RollbackRequest(Parse({"policy", "rollback", "--to", "3", "--reason", "lockouts"}));
  REQUIRE(rb.ok());
  CHECK(rb->to_version() == 3);
  CHECK(rb->reason() == "lockouts");
  CHECK(Contains(ParseError({"policy", "rollback", "--reason", "x"}), "needs --to VERSION"));
  CHECK(Contains(ParseError({"policy", "rollback", "--to", "3"}), "needs --reason TEXT"));
  CHECK(Contains(ParseError({"policy", "rollback", "3", "--to", "3", "--reason", "x"}),
                 "takes no arguments"));
  CHECK(Contains(RollbackRequest(Parse({"policy", "rollback", "--to", "three", "--reason", "x"}))
                     .status()
                     .message(),
                 "--to: 'three' is not a whole number"));
  CHECK(Contains(ParseError({"policy", "history", "--format", "yaml"}), "one of: table json csv"));
}

TEST_CASE("device --policy: a flag of the device command, not with --history") {
  auto inv = Parse({"device", "dev-1", "--policy"});
  CHECK(inv.command->name == "device");
  CHECK(inv.Has("policy"));
  CHECK(inv.args == std::vector<std::string>{"dev-1"});
  CHECK(Parse({"device", "--policy", "dev-1", "--format", "json"}).args ==
        std::vector<std::string>{"dev-1"});
  CHECK(
      Contains(ParseError({"device", "dev-1", "--policy", "--history", "3"}), "give one of them"));
  CHECK(Contains(ParseError({"device", "dev-1", "--policy=yes"}), "--policy takes no value"));
  CHECK(Contains(ParseError({"devices", "--policy"}), "unknown flag --policy for 'devices'"));
}

TEST_CASE("exception request: exactly one of device/tag and of expires/for") {
  auto inv = Parse({"exception", "request", "--device", "dev-1", "--check", "usb_storage",
                    "--reason", "imaging station", "--for", "7d"});
  auto req = ExceptionRequestFromFlags(inv, kNowMs);
  REQUIRE_MESSAGE(req.ok(), req.status().message());
  CHECK(req->device_id() == "dev-1");
  CHECK(req->tag().empty());
  CHECK(req->check() == "usb_storage");
  CHECK(req->reason() == "imaging station");
  CHECK(Iso(req->expires_at()) == "2026-12-07T00:00:00Z");  // --for counts from now

  auto by_tag = ExceptionRequestFromFlags(
      Parse({"exception", "request", "--tag", "kiosk", "--check", "screen_lock", "--reason", "r",
             "--expires", "2026-12-31T18:00:00+01:00"}),
      kNowMs);
  REQUIRE(by_tag.ok());
  CHECK(by_tag->tag() == "kiosk");
  CHECK(by_tag->device_id().empty());
  CHECK(Iso(by_tag->expires_at()) == "2026-12-31T17:00:00Z");
  CHECK(Iso(ExceptionRequestFromFlags(
                Parse({"exception", "request", "--tag", "k", "--check", "screen_lock", "--reason",
                       "r", "--expires", "2027-01-15"}),
                kNowMs)
                ->expires_at()) == "2027-01-15T00:00:00Z");

  const std::vector<std::string> rest = {"--check", "usb_storage", "--reason", "r"};
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"exception", "request"};
    a.insert(a.end(), rest.begin(), rest.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  CHECK(Contains(ParseError(args({"--for", "7d"})),
                 "'exception request' needs exactly one of --device ID and --tag TAG; usage:"));
  CHECK(Contains(ParseError(args({"--device", "d", "--tag", "t", "--for", "7d"})),
                 "exactly one of --device ID and --tag TAG (both were given)"));
  CHECK(Contains(ParseError(args({"--device", "d"})),
                 "exactly one of --expires TIME and --for DURATION"));
  CHECK(Contains(ParseError(args({"--device", "d", "--for", "7d", "--expires", "2026-12-31"})),
                 "exactly one of --expires TIME and --for DURATION (both were given)"));
  CHECK(Contains(
      ParseError({"exception", "request", "--device", "d", "--reason", "r", "--for", "7d"}),
      "needs --check CHECK"));
  CHECK(Contains(ParseError({"exception", "request", "--device", "d", "--check", "usb_storage",
                             "--for", "7d"}),
                 "needs --reason TEXT"));

  auto fails = [&](std::vector<std::string> extra) {
    auto r = ExceptionRequestFromFlags(Parse(args(extra)), kNowMs);
    REQUIRE(!r.ok());
    return r.status().message();
  };
  CHECK(Contains(fails({"--device", "d", "--for", "7x"}),
                 "--for: '7x' is not a duration: "
                 "unknown unit 'x'"));
  CHECK(Contains(fails({"--device", "d", "--for", "7"}), "--for: '7' is not a duration"));
  CHECK(Contains(fails({"--device", "d", "--for", "0s"}), "--for: must be longer than 0s"));
  CHECK(Contains(fails({"--device", "d", "--for", "367d"}), "more than 366 days"));
  CHECK(Contains(fails({"--device", "d", "--expires", "2026-11-29"}), "is not in the future"));
  CHECK(Contains(fails({"--device", "d", "--expires", "2026-11-30T00:00:00Z"}),
                 "is not in the future"));  // now is not after now
  CHECK(Contains(fails({"--device", "d", "--expires", "2028-01-01"}), "more than 366 days"));
  CHECK(Contains(fails({"--device", "d", "--expires", "2026-12-31T18:00:00"}),
                 "--expires: '2026-12-31T18:00:00' is not an RFC 3339 time: it needs a time zone"));
  CHECK(Contains(fails({"--device", "d", "--expires", "next week"}), "--expires: "));
  CHECK(Contains(fails({"--tag", "no spaces", "--for", "1d"}), "--tag: tag 'no spaces'"));
  auto bad_check =
      ExceptionRequestFromFlags(Parse({"exception", "request", "--device", "d", "--check", "USB",
                                       "--reason", "r", "--for", "1d"}),
                                kNowMs);
  CHECK(Contains(bad_check.status().message(), "--check: 'USB' is not a check id"));
}

TEST_CASE("exception approve, reject, revoke, list: requests") {
  auto a = ExceptionDecisionRequestFromArgs(Parse({"exception", "approve", "7"}));
  REQUIRE(a.ok());
  CHECK(a->exception_id() == 7);
  CHECK(a->reason().empty());
  CHECK(Contains(ParseError({"exception", "reject", "7"}), "'exception reject' needs --reason"));
  CHECK(Contains(ParseError({"exception", "revoke", "7"}), "'exception revoke' needs --reason"));
  CHECK(ExceptionDecisionRequestFromArgs(Parse({"exception", "revoke", "7", "--reason", "sold"}))
            ->reason() == "sold");
  CHECK(Contains(ParseError({"exception", "approve"}), "needs exactly one exception id"));
  CHECK(Contains(
      ExceptionDecisionRequestFromArgs(Parse({"exception", "approve", "x7"})).status().message(),
      "exception id 'x7' is not a number from 1"));

  CHECK(ListExceptionsRequestFromFlags(Parse({"exception", "list"}))->state() ==
        v1::EXCEPTION_STATE_UNSPECIFIED);
  auto l = ListExceptionsRequestFromFlags(
      Parse({"exception", "list", "--state", "active", "--device", "dev-1"}));
  REQUIRE(l.ok());
  CHECK(l->state() == v1::EXCEPTION_ACTIVE);
  CHECK(l->device_id() == "dev-1");
  CHECK(*ParseExceptionState("EXPIRED") == v1::EXCEPTION_EXPIRED);
  CHECK(*ParseExceptionState("exception_requested") == v1::EXCEPTION_REQUESTED);
  CHECK(ListExceptionsRequestFromFlags(Parse({"exception", "list", "--state", "bogus"}))
            .status()
            .message() ==
        "--state: unknown exception state 'bogus'; one of: requested active rejected revoked "
        "expired");
  CHECK(!ParseExceptionState("state_unspecified").ok());
  CHECK(Parse({"exception", "list", "--format", "csv"}).Format() == "csv");
  CHECK(Contains(ParseError({"exception", "request", "--device", "d", "--check", "usb_storage",
                             "--reason", "r", "--for", "1d", "--format", "csv"}),
                 "one of: table json"));
}

// ---- rows -------------------------------------------------------------------------------------

v1::ExportRecord TwoCheckRecord() {
  v1::ExportRecord rec;
  auto* d = rec.mutable_device();
  d->set_device_id("dev-1");
  d->set_hostname("alice, \"laptop\"");
  rec.set_sequence(7);
  rec.mutable_issued_at()->set_seconds(kNowMs / 1000);
  rec.mutable_received_at()->set_seconds(kNowMs / 1000 + 2);
  rec.mutable_received_at()->set_nanos(500000000);
  rec.set_status(v1::NON_COMPLIANT);
  rec.add_failing_checks("usb_storage");
  rec.set_digest(std::string("\x01\xab\xff", 3));
  auto* c1 = rec.add_checks();
  c1->set_check("screen_lock");
  c1->set_status(v1::PASS);
  c1->set_reason("locks after 300 s");
  auto* idle = c1->mutable_evidence()->mutable_screen_lock()->add_users();
  idle->set_user("alice");
  idle->mutable_idle_seconds()->set_value(300);
  auto* c2 = rec.add_checks();
  c2->set_check("usb_storage");
  c2->set_status(v1::FAIL);
  c2->set_reason("usb_storage can be loaded,\nnothing blocks it");
  c2->mutable_evidence()->mutable_usb_storage()->mutable_module_loaded()->set_value(true);
  return rec;
}

TEST_CASE("export csv: one row per (attestation, check), evidence as compact JSON") {
  auto header = ExportCsvHeader();
  CHECK(header == Row{"device_id", "hostname", "sequence", "issued_at", "received_at",
                      "device_status", "check", "check_status", "reason", "evidence", "digest"});
  auto rows = ExportCsvRows(TwoCheckRecord());
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] ==
        Row{"dev-1", "alice, \"laptop\"", "7", "2026-11-30T00:00:00Z", "2026-11-30T00:00:02.500Z",
            "NON_COMPLIANT", "screen_lock", "PASS", "locks after 300 s",
            R"({"screenLock":{"users":[{"user":"alice","idleSeconds":{"value":"300"}}]}})",
            "01abff"});
  CHECK(rows[1][6] == "usb_storage");
  CHECK(rows[1][7] == "FAIL");
  CHECK(rows[1][9] == R"({"usbStorage":{"moduleLoaded":{"value":true}}})");
  for (const auto& r : rows) CHECK(r.size() == header.size());
  // The evidence cell parses back to the same message.
  v1::Evidence back;
  REQUIRE(ParseJsonStrict(rows[1][9], &back, "cell").ok());
  CHECK(back.usb_storage().module_loaded().value());
  // And the whole record is valid RFC 4180.
  std::string csv = CsvRecord(rows[1]);
  CHECK(csv ==
        "dev-1,\"alice, \"\"laptop\"\"\",7,2026-11-30T00:00:00Z,2026-11-30T00:00:02.500Z,"
        "NON_COMPLIANT,usb_storage,FAIL,\"usb_storage can be loaded,\nnothing blocks it\","
        "\"{\"\"usbStorage\"\":{\"\"moduleLoaded\"\":{\"\"value\"\":true}}}\",01abff\r\n");
}

TEST_CASE("export csv: an attestation without checks still has a row") {
  v1::ExportRecord rec;
  rec.mutable_device()->set_device_id("dev-2");
  rec.set_sequence(1);
  auto rows = ExportCsvRows(rec);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0][0] == "dev-2");
  CHECK(rows[0][6] == "");
  CHECK(rows[0].size() == ExportCsvHeader().size());
}

TEST_CASE("listing rows: devices in table and CSV style") {
  v1::ListDevicesResponse resp;
  auto* d = resp.add_devices();
  d->set_device_id("dev-1");
  d->set_hostname("h1");
  d->set_status(v1::NON_COMPLIANT);
  d->add_failing_checks("password_policy");
  d->add_failing_checks("usb_storage");
  d->set_os("linux");
  d->set_os_name("Debian GNU/Linux 12 (bookworm)");
  d->add_tags("laptop");
  auto* never = resp.add_devices();
  never->set_device_id("dev-2");
  never->set_status(v1::UNKNOWN);
  CHECK(FormatTable(DevicesTable(resp.devices(), Style::kTable)) ==
        "DEVICE  HOSTNAME  STATUS         FAILING                      LAST-SEEN  OS          "
        "                    TAGS\n"
        "dev-1   h1        NON_COMPLIANT  password_policy,usb_storage  never      Debian "
        "GNU/Linux 12 (bookworm)  laptop\n"
        "dev-2   -         UNKNOWN        -                            never      -           "
        "                    -\n");
  auto csv = DevicesTable(resp.devices(), Style::kCsv);
  CHECK(csv.header[0] == "device_id");
  CHECK(csv.rows[0][4] == "password_policy;usb_storage");
  CHECK(csv.rows[1][5] == "");  // never seen: empty, not "never"
}

TEST_CASE("listing rows: history, alerts, sinks, audit, summary") {
  v1::DeviceHistoryResponse h;
  auto* e = h.add_entries();
  e->set_sequence(3);
  e->mutable_received_at()->set_seconds(kNowMs / 1000);
  e->set_status(v1::COMPLIANT);
  auto ht = HistoryTable(h.entries(), Style::kTable);
  CHECK(ht.rows[0] == Row{"3", "-", "2026-11-30T00:00:00Z", "COMPLIANT", "-"});

  v1::ListAlertsResponse a;
  auto* al = a.add_alerts();
  al->set_id(9);
  al->set_kind("device.non_compliant");
  al->set_device_id("dev-1");
  al->set_status(v1::NON_COMPLIANT);
  al->set_previous_status(v1::COMPLIANT);
  al->set_idempotency_key("k9");
  CHECK(AlertsTable(a.alerts(), Style::kTable).rows[0][6] == "COMPLIANT");
  CHECK(AlertsTable(a.alerts(), Style::kCsv).rows[0].back() == "k9");
  auto* s = a.add_sinks();
  s->set_name("soc");
  s->set_type("webhook");
  s->set_pending(2);
  s->set_attempts(3);
  s->set_last_error("HTTP 503");
  auto st = SinksTable(a.sinks());
  CHECK(st.rows[0] == Row{"soc", "webhook", "0", "2", "0", "3", "-", "HTTP 503"});

  v1::AuditEntry ae;
  ae.set_id(1);
  ae.set_at_ms(kNowMs + 250);
  ae.set_actor("cli");
  ae.set_action("device.revoke");
  ae.set_success(true);
  ae.set_hash(std::string("\xaa", 1));
  auto at = AuditTable({ae}, Style::kCsv);
  CHECK(at.rows[0][1] == "2026-11-30T00:00:00.250Z");
  CHECK(at.rows[0][5] == "true");
  CHECK(at.rows[0][8] == "aa");

  v1::SummaryResponse sum;
  sum.set_total(4);
  auto* c = sum.add_by_status();
  c->set_status(v1::COMPLIANT);
  c->set_count(4);
  CHECK(FormatCsv(SummaryTable(sum, Style::kCsv)) ==
        "status,devices\r\nCOMPLIANT,4\r\nTOTAL,4\r\n");
}

// ---- policy changes and exceptions: output ------------------------------------------------------

google::protobuf::Timestamp At(int64_t seconds_after_now) {
  google::protobuf::Timestamp t;
  t.set_seconds(kNowMs / 1000 + seconds_after_now);
  return t;
}

void AddCount(google::protobuf::RepeatedPtrField<v1::StatusCount>* counts, v1::DeviceStatus st,
              uint64_t n) {
  auto* c = counts->Add();
  c->set_status(st);
  c->set_count(n);
}

void AddCheck(google::protobuf::RepeatedPtrField<v1::CheckCount>* counts, const std::string& check,
              uint64_t failing, uint64_t excepted = 0) {
  auto* c = counts->Add();
  c->set_check(check);
  c->set_failing(failing);
  c->set_excepted(excepted);
}

v1::PolicyImpact Impact() {
  v1::PolicyImpact im;
  im.set_change_id(12);
  im.set_base_version(4);
  im.set_current_version(4);
  im.set_devices(10);
  im.set_changed(3);
  im.add_diff("default.screenLock.maxIdleSeconds: 900 -> 600");
  // The server need not send a status in both lists, nor in the same order.
  AddCount(im.mutable_before(), v1::NON_COMPLIANT, 1);
  AddCount(im.mutable_before(), v1::COMPLIANT, 8);
  AddCount(im.mutable_before(), v1::STALE, 1);
  AddCount(im.mutable_after(), v1::COMPLIANT, 5);
  AddCount(im.mutable_after(), v1::NON_COMPLIANT, 4);
  AddCount(im.mutable_after(), v1::STALE, 1);
  auto* sl = im.add_checks();
  sl->set_check("screen_lock");
  sl->set_failing_before(1);
  sl->set_failing_after(4);
  sl->set_newly_failing(3);
  auto* usb = im.add_checks();
  usb->set_check("usb_storage");
  usb->set_failing_before(2);
  usb->set_failing_after(1);
  usb->set_newly_passing(1);
  auto* d1 = im.add_devices_changed();
  d1->set_device_id("dev-1");
  d1->set_hostname("h1");
  d1->set_before(v1::COMPLIANT);
  d1->set_after(v1::NON_COMPLIANT);
  d1->add_failing_after("screen_lock");
  auto* d2 = im.add_devices_changed();
  d2->set_device_id("dev-2");
  d2->set_before(v1::COMPLIANT);
  d2->set_after(v1::NON_COMPLIANT);
  d2->add_failing_after("screen_lock");
  d2->add_failing_after("usb_storage");
  return im;
}

TEST_CASE("policy preview: diff, counts side by side, per-check impact, changed devices") {
  std::string text = PolicyImpactText(Impact());
  CHECK(!Contains(text, "WARNING"));
  CHECK(text.rfind("change 12 on version 4 (current 4): 10 devices, 3 would change status\n", 0) ==
        0);
  CHECK(Contains(text, "DIFF (from version 4)\n  default.screenLock.maxIdleSeconds: 900 -> 600\n"));
  CHECK(Contains(text,
                 "STATUS         BEFORE  AFTER  CHANGE\n"
                 "COMPLIANT      8       5      -3\n"
                 "NON_COMPLIANT  1       4      +3\n"
                 "STALE          1       1      0\n"
                 "TOTAL          10      10     0\n"));
  CHECK(Contains(text,
                 "CHECK        FAILING-BEFORE  FAILING-AFTER  NEWLY-FAILING  NEWLY-PASSING\n"
                 "screen_lock  1               4              3              0\n"
                 "usb_storage  2               1              0              1\n"));
  CHECK(Contains(text,
                 "DEVICES WHOSE STATUS WOULD CHANGE (3; the first 2 listed, --limit N for more)\n"
                 "DEVICE  HOSTNAME  STATUS                      FAILING-AFTER\n"
                 "dev-1   h1        COMPLIANT -> NON_COMPLIANT  screen_lock\n"
                 "dev-2   -         COMPLIANT -> NON_COMPLIANT  screen_lock,usb_storage\n"));

  auto moved = Impact();
  moved.set_current_version(5);
  std::string warned = PolicyImpactText(moved);
  CHECK(warned.rfind("WARNING: change 12 was proposed on version 4 but the current version is 5:\n"
                     "WARNING: applying it will be refused. Propose it again",
                     0) == 0);

  v1::PolicyImpact none;
  none.set_change_id(1);
  none.set_base_version(1);
  none.set_current_version(1);
  std::string empty = PolicyImpactText(none);
  CHECK(Contains(empty, "  (no differences)\n"));
  CHECK(Contains(empty, "TOTAL   0       0      0\n"));
  CHECK(Contains(empty, "no device would change status\n"));
}

TEST_CASE("policy review: before, after and now side by side") {
  v1::PolicyReview rv;
  auto* c = rv.mutable_change();
  c->set_id(12);
  c->set_kind(v1::CHANGE);
  c->set_state(v1::APPLIED);
  c->set_version(5);
  c->set_applied_by("token:alice (admin)");
  *c->mutable_applied_at() = At(0);
  rv.set_current_version(5);
  AddCount(rv.mutable_before()->mutable_by_status(), v1::COMPLIANT, 8);
  AddCount(rv.mutable_before()->mutable_by_status(), v1::NON_COMPLIANT, 2);
  AddCount(rv.mutable_after()->mutable_by_status(), v1::COMPLIANT, 5);
  AddCount(rv.mutable_after()->mutable_by_status(), v1::NON_COMPLIANT, 5);
  AddCount(rv.mutable_now()->mutable_by_status(), v1::COMPLIANT, 9);
  AddCount(rv.mutable_now()->mutable_by_status(), v1::NON_COMPLIANT, 1);
  AddCount(rv.mutable_now()->mutable_by_status(), v1::EXCEPTED, 1);
  AddCheck(rv.mutable_before()->mutable_by_check(), "screen_lock", 2);
  AddCheck(rv.mutable_after()->mutable_by_check(), "screen_lock", 5, 1);
  AddCheck(rv.mutable_now()->mutable_by_check(), "usb_storage", 1);

  Table st =
      StatusCountsTable({"BEFORE", "AFTER", "NOW"},
                        {&rv.before().by_status(), &rv.after().by_status(), &rv.now().by_status()});
  CHECK(st.header == Row{"STATUS", "BEFORE", "AFTER", "NOW"});
  REQUIRE(st.rows.size() == 4);
  CHECK(st.rows[0] == Row{"COMPLIANT", "8", "5", "9"});
  CHECK(st.rows[1] == Row{"NON_COMPLIANT", "2", "5", "1"});
  CHECK(st.rows[2] == Row{"EXCEPTED", "0", "0", "1"});
  CHECK(st.rows[3] == Row{"TOTAL", "10", "10", "11"});
  Table ct =
      CheckCountsTable({"BEFORE", "AFTER", "NOW"},
                       {&rv.before().by_check(), &rv.after().by_check(), &rv.now().by_check()});
  REQUIRE(ct.rows.size() == 2);
  CHECK(ct.rows[0] == Row{"screen_lock", "2", "5 (1 excepted)", "0"});
  CHECK(ct.rows[1] == Row{"usb_storage", "0", "0", "1"});

  std::string text = PolicyReviewText(rv);
  CHECK(text.rfind("change 12 (CHANGE, APPLIED) made version 5, applied by token:alice (admin) at "
                   "2026-11-30T00:00:00Z\ncurrent version 5 (this change's)\n",
                   0) == 0);
  CHECK(Contains(text, FormatTable(st)));
  CHECK(Contains(text, "FAILING DEVICES BY CHECK\n" + FormatTable(ct)));
}

v1::ListPolicyChangesResponse Changes() {
  v1::ListPolicyChangesResponse resp;
  auto* init = resp.add_changes();
  init->set_id(1);
  init->set_kind(v1::INITIAL);
  init->set_state(v1::APPLIED);
  init->set_version(1);
  init->set_proposed_by("server");
  *init->mutable_proposed_at() = At(-86400);
  *init->mutable_applied_at() = At(-86400);
  init->set_reason("--policy /etc/vigil/policy.json");
  auto* ch = resp.add_changes();
  ch->set_id(2);
  ch->set_kind(v1::CHANGE);
  ch->set_state(v1::APPLIED);
  ch->set_version(2);
  ch->set_base_version(1);
  ch->set_proposed_by("token:alice (admin)");
  *ch->mutable_proposed_at() = At(-3600);
  ch->set_decided_by("token:bob (approver)");
  *ch->mutable_decided_at() = At(-1800);
  ch->set_applied_by("token:alice (admin)");
  *ch->mutable_applied_at() = At(-600);
  ch->set_devices_changed(3);
  ch->set_reason("lock after 10 minutes, not 15");
  ch->set_rollback_plan("vigilctl policy rollback --to 1");
  auto* rej = resp.add_changes();
  rej->set_id(3);
  rej->set_kind(v1::CHANGE);
  rej->set_state(v1::REJECTED);
  rej->set_proposed_by("token:carol (admin)");
  rej->set_decided_by("token:bob (approver)");
  rej->set_decision_reason("breaks kiosks");
  rej->set_reason("block usb");
  auto* rb = resp.add_changes();
  rb->set_id(4);
  rb->set_kind(v1::ROLLBACK);
  rb->set_state(v1::APPLIED);
  rb->set_rollback_to(1);
  rb->set_version(1);
  rb->set_proposed_by("token:alice (admin)");
  *rb->mutable_applied_at() = At(0);
  rb->set_reason("lockouts");
  resp.set_current_version(1);
  return resp;
}

TEST_CASE("policy history: one row per change, the current version marked once") {
  auto resp = Changes();
  Table t = PolicyChangesTable(resp, Style::kTable);
  CHECK(t.header == Row{"ID", "KIND", "STATE", "VERSION", "PROPOSED-BY", "PROPOSED-AT",
                        "DECIDED-BY", "APPLIED-AT", "REASON"});
  REQUIRE(t.rows.size() == 4);
  // Version 1 is current again through the rollback (change 4), not through change 1.
  CHECK(t.rows[0] == Row{"1", "INITIAL", "APPLIED", "1", "server", "2026-11-29T00:00:00Z", "-",
                         "2026-11-29T00:00:00Z", "--policy /etc/vigil/policy.json"});
  CHECK(t.rows[1] == Row{"2", "CHANGE", "APPLIED", "2", "token:alice (admin)",
                         "2026-11-29T23:00:00Z", "token:bob (approver)", "2026-11-29T23:50:00Z",
                         "lock after 10 minutes, not 15"});
  CHECK(t.rows[2] == Row{"3", "CHANGE", "REJECTED", "-", "token:carol (admin)", "-",
                         "token:bob (approver)", "-", "block usb"});
  CHECK(t.rows[3] == Row{"4", "ROLLBACK to version 1", "APPLIED", "1 (current)",
                         "token:alice (admin)", "-", "-", "2026-11-30T00:00:00Z", "lockouts"});

  resp.set_current_version(2);
  CHECK(PolicyChangesTable(resp, Style::kTable).rows[1][3] == "2 (current)");
  CHECK(PolicyChangesTable(resp, Style::kTable).rows[3][3] == "1");

  Table csv = PolicyChangesTable(resp, Style::kCsv);
  REQUIRE(csv.header.size() == csv.rows[1].size());
  auto col = [&](const std::string& name) {
    auto it = std::find(csv.header.begin(), csv.header.end(), name);
    REQUIRE(it != csv.header.end());
    return static_cast<size_t>(it - csv.header.begin());
  };
  CHECK(csv.rows[1][col("id")] == "2");
  CHECK(csv.rows[1][col("version")] == "2");
  CHECK(csv.rows[1][col("current")] == "true");
  CHECK(csv.rows[3][col("current")] == "false");
  CHECK(csv.rows[3][col("kind")] == "ROLLBACK");
  CHECK(csv.rows[3][col("rollback_to")] == "1");
  CHECK(csv.rows[1][col("base_version")] == "1");
  CHECK(csv.rows[1][col("decided_at")] == "2026-11-29T23:30:00Z");
  CHECK(csv.rows[1][col("devices_changed")] == "3");
  CHECK(csv.rows[2][col("devices_changed")] == "");
  CHECK(csv.rows[2][col("decision_reason")] == "breaks kiosks");
  CHECK(csv.rows[2][col("version")] == "");
  CHECK(csv.rows[1][col("rollback_plan")] == "vigilctl policy rollback --to 1");
  CHECK(Contains(FormatCsv(csv), "\"lock after 10 minutes, not 15\""));
}

TEST_CASE("policy change: brief and full, with who, when and why") {
  auto ch = Changes().changes(1);
  std::string brief = PolicyChangeBrief(ch);
  CHECK(brief ==
        "change    2\n"
        "kind      CHANGE\n"
        "state     APPLIED\n"
        "version   2\n"
        "proposed  token:alice (admin) at 2026-11-29T23:00:00Z\n"
        "decided   token:bob (approver) at 2026-11-29T23:30:00Z\n"
        "applied   token:alice (admin) at 2026-11-29T23:50:00Z (3 devices changed status)\n");
  auto rej = Changes().changes(2);
  CHECK(Contains(PolicyChangeBrief(rej), "rejected  token:bob (approver)\n"));
  CHECK(Contains(PolicyChangeBrief(rej), "decision  breaks kiosks\n"));
  CHECK(!Contains(PolicyChangeBrief(rej), "version"));

  ch.add_diff("default.screenLock.maxIdleSeconds: 900 -> 600");
  AddCount(ch.mutable_before()->mutable_by_status(), v1::COMPLIANT, 10);
  AddCount(ch.mutable_after()->mutable_by_status(), v1::COMPLIANT, 7);
  AddCount(ch.mutable_after()->mutable_by_status(), v1::NON_COMPLIANT, 3);
  std::string full = PolicyChangeDetail(ch);
  CHECK(Contains(full, "reason         lock after 10 minutes, not 15\n"));
  CHECK(Contains(full, "rollback plan  vigilctl policy rollback --to 1\n"));
  CHECK(Contains(full, "base           version 1\n"));
  CHECK(Contains(full, "DIFF (from version 1)\n  default.screenLock.maxIdleSeconds: 900 -> 600\n"));
  CHECK(Contains(full,
                 "COMPLIANCE AT APPLY\n"
                 "STATUS         BEFORE  AFTER\n"
                 "COMPLIANT      10      7\n"
                 "NON_COMPLIANT  0       3\n"
                 "TOTAL          10      10\n"));

  v1::PolicyChange proposed;
  proposed.set_id(13);
  proposed.set_state(v1::PROPOSED);
  proposed.set_base_version(2);
  proposed.set_set_version("sha256:0123456789ab");
  std::string p = ProposedText(proposed);
  CHECK(p.rfind("proposed change 13 (PROPOSED), set sha256:0123456789ab, on version 2\n", 0) == 0);
  CHECK(Contains(p, "vigilctl policy preview 13"));

  v1::DiffPolicyVersionsResponse diff;
  CHECK(DiffText(diff.lines()) == "(no differences)\n");
  diff.add_lines("description: \"a\" -> \"b\x1b[2J\"");
  CHECK(DiffText(diff.lines()) == "description: \"a\" -> \"b\\x1b[2J\"\n");
}

v1::PolicyException Exception(uint64_t id, v1::ExceptionState state) {
  v1::PolicyException e;
  e.set_id(id);
  e.set_state(state);
  e.set_check("usb_storage");
  e.set_reason("imaging station, needs sticks");
  *e.mutable_expires_at() = At(7 * 86400);
  e.set_requested_by("token:alice (admin)");
  *e.mutable_requested_at() = At(-60);
  return e;
}

TEST_CASE("exceptions: list in table and CSV style, and one in full") {
  v1::ListExceptionsResponse resp;
  auto* dev = resp.add_exceptions();
  *dev = Exception(7, v1::EXCEPTION_ACTIVE);
  dev->set_device_id("dev-1");
  dev->set_decided_by("token:bob (approver)");
  *dev->mutable_decided_at() = At(-30);
  dev->set_decision_reason("until the new imaging flow");
  auto* tag = resp.add_exceptions();
  *tag = Exception(8, v1::EXCEPTION_REVOKED);
  tag->set_tag("kiosk");
  tag->set_check("screen_lock");
  tag->set_ended_by("token:bob (approver)");
  *tag->mutable_ended_at() = At(-10);
  tag->set_end_reason("kiosks replaced");

  Table t = ExceptionsTable(resp.exceptions(), Style::kTable);
  CHECK(t.header ==
        Row{"ID", "STATE", "FOR", "CHECK", "EXPIRES", "REQUESTED-BY", "DECIDED-BY", "REASON"});
  CHECK(t.rows[0] == Row{"7", "ACTIVE", "device dev-1", "usb_storage", "2026-12-07T00:00:00Z",
                         "token:alice (admin)", "token:bob (approver)",
                         "imaging station, needs sticks"});
  CHECK(t.rows[1] == Row{"8", "REVOKED", "tag kiosk", "screen_lock", "2026-12-07T00:00:00Z",
                         "token:alice (admin)", "-", "imaging station, needs sticks"});

  Table csv = ExceptionsTable(resp.exceptions(), Style::kCsv);
  CHECK(csv.header == Row{"id", "state", "device_id", "tag", "check", "reason", "expires_at",
                          "requested_by", "requested_at", "decided_by", "decided_at",
                          "decision_reason", "ended_by", "ended_at", "end_reason"});
  CHECK(csv.rows[0] == Row{"7", "ACTIVE", "dev-1", "", "usb_storage",
                           "imaging station, needs sticks", "2026-12-07T00:00:00Z",
                           "token:alice (admin)", "2026-11-29T23:59:00Z", "token:bob (approver)",
                           "2026-11-29T23:59:30Z", "until the new imaging flow", "", "", ""});
  CHECK(csv.rows[1][3] == "kiosk");
  CHECK(csv.rows[1][12] == "token:bob (approver)");
  CHECK(csv.rows[1][14] == "kiosks replaced");

  CHECK(ExceptionBrief(resp.exceptions(0)) ==
        "exception  7\n"
        "state      ACTIVE\n"
        "for        device dev-1\n"
        "check      usb_storage\n"
        "expires    2026-12-07T00:00:00Z\n"
        "reason     imaging station, needs sticks\n"
        "requested  token:alice (admin) at 2026-11-29T23:59:00Z\n"
        "decided    token:bob (approver) at 2026-11-29T23:59:30Z: until the new imaging flow\n");
  CHECK(Contains(ExceptionBrief(resp.exceptions(1)),
                 "ended      token:bob (approver) at 2026-11-29T23:59:50Z: kiosks replaced\n"));
  CHECK(ExceptionStateName(v1::EXCEPTION_EXPIRED) == "EXPIRED");
}

TEST_CASE("policy show and device --policy: JSON of the set, origins, conflicts, exceptions") {
  v1::PolicyVersionInfo info;
  info.set_version(2);
  info.set_change_id(5);
  info.set_set_version("sha256:0123456789ab");
  info.set_applied_by("token:alice (admin)");
  *info.mutable_applied_at() = At(0);
  info.mutable_policy_set()->mutable_default_policy()->mutable_password()->set_min_length(12);
  std::string show = PolicyVersionText(info);
  CHECK(show.rfind("version     2\n"
                   "change      5\n"
                   "applied by  token:alice (admin)\n"
                   "applied at  2026-11-30T00:00:00Z\n"
                   "set         sha256:0123456789ab\n\n",
                   0) == 0);
  // The set as the protobuf JSON mapping: it parses back, so it can be edited and proposed.
  std::string json = show.substr(show.find("\n\n") + 2);
  v1::PolicySet back;
  REQUIRE(ParseJsonStrict(json, &back, "show").ok());
  CHECK(back.default_policy().password().min_length() == 12);
  CHECK(Contains(json, "\"minLength\": 12"));

  v1::DevicePolicyResponse dp;
  dp.set_device_id("dev-1");
  dp.set_version(2);
  dp.set_os("linux");
  dp.add_tags("kiosk");
  dp.mutable_policy()->set_version("sha256:0123456789ab+kiosk");
  dp.mutable_policy()->mutable_usb_storage()->set_mode(v1::BLOCKED);
  dp.add_applied_overrides("kiosk");
  auto* o = dp.add_origins();
  o->set_path("usbStorage.mode");
  o->set_override("kiosk");
  *dp.add_exceptions() = Exception(7, v1::EXCEPTION_ACTIVE);
  dp.mutable_exceptions(0)->set_tag("kiosk");
  std::string text = DevicePolicyText(dp);
  CHECK(Contains(text,
                 "device     dev-1\nos         linux\ntags       kiosk\nversion    2\n"
                 "policy     sha256:0123456789ab+kiosk\noverrides  kiosk\n"));
  CHECK(Contains(text, "\"mode\": \"BLOCKED\""));
  CHECK(Contains(text,
                 "ORIGINS (every value not listed comes from the default policy)\n"
                 "  usbStorage.mode  <- kiosk\n"));
  CHECK(Contains(text, "EXCEPTIONS (active)\nID  STATE   FOR        CHECK"));
  CHECK(Contains(text, "7   ACTIVE  tag kiosk  usb_storage"));
  CHECK(!Contains(text, "CONFLICT"));
  dp.set_error("usbStorage.allowedDevices: only valid with mode ALLOWED");
  dp.clear_exceptions();
  dp.clear_origins();
  std::string conflict = DevicePolicyText(dp);
  CHECK(Contains(conflict, "CONFLICT: usbStorage.allowedDevices: only valid with mode ALLOWED\n"));
  CHECK(Contains(conflict, "ORIGINS: every value comes from the default policy\n"));
  CHECK(Contains(conflict, "EXCEPTIONS: none active\n"));
}

// ---- evidence ---------------------------------------------------------------------------------

TEST_CASE("evidence: facts on one line with where they came from") {
  v1::Evidence ev;
  auto* sl = ev.mutable_screen_lock();
  sl->add_sessions_found("/usr/share/xsessions/gnome.desktop");
  auto* u = sl->add_users();
  u->set_user("alice");
  u->set_uid(1000);
  u->set_desktop(v1::GNOME);
  auto* idle = u->mutable_idle_seconds();
  idle->set_value(0);  // a zero fact value is still shown
  auto* from = idle->mutable_from();
  from->set_source("/etc/dconf/db/local.d/00-screensaver");
  from->set_line(3);
  from->set_key("/org/gnome/desktop/session/idle-delay");
  from->set_raw("uint32 0");
  from->set_locked(true);
  sl->add_warnings("a warning");
  auto lines = EvidenceLines(ev);
  std::vector<std::string> want = {
      "sessions_found:",
      "  - /usr/share/xsessions/gnome.desktop",
      "users:",
      "  - user: alice",
      "    uid: 1000",
      "    desktop: GNOME",
      "    idle_seconds: 0  [/etc/dconf/db/local.d/00-screensaver:3, key "
      "/org/gnome/desktop/session/idle-delay, raw \"uint32 0\", locked]",
      "warnings:",
      "  - a warning",
  };
  CHECK(lines == want);
  v1::Evidence err;
  err.set_collection_error("cannot read /etc/shadow");
  CHECK(EvidenceLines(err) ==
        std::vector<std::string>{"collection_error: cannot read /etc/shadow"});
}

TEST_CASE("device detail: readable and sanitized") {
  v1::GetDeviceResponse resp;
  resp.mutable_device()->set_device_id("dev-1");
  resp.mutable_device()->set_hostname("evil\x1b[2J");
  resp.mutable_device()->set_status(v1::NON_COMPLIANT);
  auto rec = TwoCheckRecord();
  *resp.mutable_checks() = rec.checks();
  std::string text = DeviceDetail(resp);
  CHECK(Contains(text, "hostname  evil\\x1b[2J\n"));
  CHECK(Contains(text,
                 "  usb_storage  FAIL           usb_storage can be loaded,\\nnothing blocks it"));
  CHECK(Contains(text, "      module_loaded: true\n"));
  CHECK(Contains(text, "      users:\n        - user: alice\n          idle_seconds: 300\n"));
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK_FALSE(Contains(text, "agent     "));  // no health reported: no line
  resp.mutable_agent_health()->set_outbox_depth(2);
  resp.mutable_agent_health()->set_outbox_dropped(15);
  CHECK(Contains(DeviceDetail(resp),
                 "agent     healthy; outbox 2 queued, 15 dropped while offline\n"
                 "          last collection with evidence for every check: never\n"));
  // The server's list of what is wrong with the agent, sanitized like any untrusted text.
  resp.mutable_agent_health()->set_last_complete_collection_ms(1790000000000);
  resp.add_agent_problems("could not collect evidence for usb_storage");
  resp.add_agent_problems("last error: report: down\x1b[2J");
  std::string sick = DeviceDetail(resp);
  CHECK(Contains(sick, "agent     NEEDS ATTENTION; outbox 2 queued"));
  CHECK(Contains(sick, "every check: 2026-09-21T"));
  CHECK(Contains(sick, "\n          could not collect evidence for usb_storage\n"));
  CHECK(Contains(sick, "\n          last error: report: down\\x1b[2J\n"));
}

// ---- atomic output ----------------------------------------------------------------------------

TEST_CASE("atomic output: the file appears whole on commit, untouched without") {
  TempDir dir("vigil-ctl");
  std::string path = dir / "report.csv";
  REQUIRE(WriteFileAtomic(path, "old report").ok());
  {
    auto out = AtomicFileOutput(path);
    REQUIRE(out.ok());
    CHECK((*out)->Write("half a new rep").ok());
    // destroyed without Commit: the stream failed
  }
  CHECK(*ReadWholeFile(path) == "old report");
  {
    auto out = AtomicFileOutput(path);
    REQUIRE(out.ok());
    CHECK((*out)->Write(std::string(100000, 'x')).ok());
    CHECK((*out)->Write("end").ok());
    CHECK((*out)->Commit().ok());
  }
  CHECK(ReadWholeFile(path)->size() == 100003);
  // No temp file left beside it.
  CHECK(std::system(("test $(ls -A " + dir.path() + " | wc -l) -eq 1").c_str()) == 0);
  CHECK(!AtomicFileOutput(dir / "missing-dir/x.csv").ok());
  CHECK(!AtomicFileOutput(dir.path() + "/").ok());
}

// ---- paging and the export stream, against an in-process FleetService ---------------------------

// Pages like vigil-server: a full page carries a token, a short one is the last.
class FakeFleet final : public v1::FleetService::Service {
 public:
  std::vector<v1::DeviceSummary> devices;  // in id order
  std::vector<v1::HistoryEntry> history;   // newest first
  std::vector<v1::Alert> alerts;           // oldest first
  std::vector<v1::ExportRecord> records;
  std::vector<v1::PolicyChange> changes;  // oldest first
  bool stuck_token = false;               // ListDevices always answers the same token
  int fail_export_after = -1;             // ExportEvidence fails after this many records

  std::vector<uint32_t> Asked() {
    std::lock_guard<std::mutex> lock(mu_);
    return asked_;
  }

  grpc::Status ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest* req,
                           v1::ListDevicesResponse* resp) override {
    uint32_t limit = Record(req->limit());
    for (const auto& d : devices) {
      if (d.device_id() > req->page_token() && resp->devices_size() < static_cast<int>(limit)) {
        *resp->add_devices() = d;
      }
    }
    if (resp->devices_size() == static_cast<int>(limit)) {
      resp->set_next_page_token(stuck_token ? "dev-0" : resp->devices().rbegin()->device_id());
    }
    return grpc::Status::OK;
  }

  grpc::Status DeviceHistory(grpc::ServerContext*, const v1::DeviceHistoryRequest* req,
                             v1::DeviceHistoryResponse* resp) override {
    uint32_t limit = Record(req->limit());
    for (const auto& h : history) {
      bool before = req->before_sequence() == 0 || h.sequence() < req->before_sequence();
      if (before && resp->entries_size() < static_cast<int>(limit)) *resp->add_entries() = h;
    }
    if (resp->entries_size() == static_cast<int>(limit) &&
        resp->entries().rbegin()->sequence() > history.back().sequence()) {
      resp->set_next_before_sequence(resp->entries().rbegin()->sequence());
    }
    return grpc::Status::OK;
  }

  grpc::Status ListAlerts(grpc::ServerContext*, const v1::ListAlertsRequest* req,
                          v1::ListAlertsResponse* resp) override {
    uint32_t limit = Record(req->limit());
    for (const auto& a : alerts) {
      if (a.id() > req->after_id() && resp->alerts_size() < static_cast<int>(limit)) {
        *resp->add_alerts() = a;
      }
    }
    auto* sink = resp->add_sinks();
    sink->set_name("soc");
    sink->set_pending(Asked().size());  // tells which call's state the client kept
    return grpc::Status::OK;
  }

  grpc::Status ListPolicyChanges(grpc::ServerContext*, const v1::ListPolicyChangesRequest* req,
                                 v1::ListPolicyChangesResponse* resp) override {
    uint32_t limit = Record(req->limit());
    for (const auto& c : changes) {
      if (c.id() > req->after_id() && resp->changes_size() < static_cast<int>(limit)) {
        *resp->add_changes() = c;
      }
    }
    resp->set_current_version(Asked().size());  // tells which call's answer the client kept
    return grpc::Status::OK;
  }

  grpc::Status ExportEvidence(grpc::ServerContext*, const v1::ExportRequest*,
                              grpc::ServerWriter<v1::ExportRecord>* writer) override {
    for (size_t i = 0; i < records.size(); ++i) {
      if (static_cast<int>(i) == fail_export_after) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "database went away");
      }
      writer->Write(records[i]);
    }
    return grpc::Status::OK;
  }

 private:
  uint32_t Record(uint32_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    asked_.push_back(limit);
    return limit == 0 ? 1000 : limit;
  }
  std::mutex mu_;
  std::vector<uint32_t> asked_;
};

struct FakeServer {
  FakeFleet fleet;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::FleetService::Stub> stub;

  FakeServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&fleet);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    stub = v1::FleetService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                         grpc::InsecureChannelCredentials()));
  }
  ~FakeServer() { server->Shutdown(); }

  FleetCalls Calls(uint32_t page_size) {
    return FleetCalls{
        *stub,
        [] {
          auto ctx = std::make_unique<grpc::ClientContext>();
          ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          return ctx;
        },
        page_size};
  }
};

std::vector<std::string> Ids(const v1::ListDevicesResponse& r) {
  std::vector<std::string> out;
  for (const auto& d : r.devices()) out.push_back(d.device_id());
  return out;
}

TEST_CASE("paging: devices follow the page token to the end, or stop at --limit") {
  FakeServer fs;
  for (int i = 0; i < 5; ++i)
    fs.fleet.devices.emplace_back().set_device_id("dev-" + std::to_string(i));
  v1::ListDevicesResponse all;
  REQUIRE(FetchDevices(fs.Calls(2), v1::ListDevicesRequest(), std::nullopt, &all).ok());
  CHECK(Ids(all) == std::vector<std::string>{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4"});
  CHECK(fs.fleet.Asked() == std::vector<uint32_t>{2, 2, 2});
  CHECK(all.next_page_token().empty());

  v1::ListDevicesResponse three;
  REQUIRE(FetchDevices(fs.Calls(2), v1::ListDevicesRequest(), 3, &three).ok());
  CHECK(Ids(three) == std::vector<std::string>{"dev-0", "dev-1", "dev-2"});
  CHECK(fs.fleet.Asked() == std::vector<uint32_t>{2, 2, 2, 2, 1});  // the last asks only 1

  fs.fleet.stuck_token = true;
  v1::ListDevicesResponse stuck;
  grpc::Status s = FetchDevices(fs.Calls(2), v1::ListDevicesRequest(), std::nullopt, &stuck);
  CHECK(!s.ok());
  CHECK(Contains(s.error_message(), "did not advance"));
}

TEST_CASE("paging: history newest first through before_sequence") {
  FakeServer fs;
  for (uint64_t seq = 5; seq >= 1; --seq) fs.fleet.history.emplace_back().set_sequence(seq);
  v1::DeviceHistoryRequest req;
  req.set_device_id("dev-0");
  v1::DeviceHistoryResponse all;
  REQUIRE(FetchHistory(fs.Calls(2), req, std::nullopt, &all).ok());
  std::vector<uint64_t> seqs;
  for (const auto& e : all.entries()) seqs.push_back(e.sequence());
  CHECK(seqs == std::vector<uint64_t>{5, 4, 3, 2, 1});
  v1::DeviceHistoryResponse newest;
  REQUIRE(FetchHistory(fs.Calls(2), req, 3, &newest).ok());
  CHECK(newest.entries_size() == 3);
  CHECK(newest.entries(2).sequence() == 3);
}

TEST_CASE("paging: alerts after an id, and the sinks' latest state") {
  FakeServer fs;
  for (uint64_t id = 1; id <= 5; ++id) fs.fleet.alerts.emplace_back().set_id(id);
  v1::ListAlertsRequest req;
  req.set_after_id(1);
  v1::ListAlertsResponse all;
  REQUIRE(FetchAlerts(fs.Calls(2), req, std::nullopt, &all).ok());
  std::vector<uint64_t> ids;
  for (const auto& a : all.alerts()) ids.push_back(a.id());
  CHECK(ids == std::vector<uint64_t>{2, 3, 4, 5});
  REQUIRE(all.sinks_size() == 1);
  CHECK(all.sinks(0).pending() == 3);  // from the third (last) call
  v1::ListAlertsResponse two;
  REQUIRE(FetchAlerts(fs.Calls(10), req, 2, &two).ok());
  CHECK(two.alerts_size() == 2);
}

TEST_CASE("paging: policy changes after an id until a short page") {
  FakeServer fs;
  for (uint64_t id = 1; id <= 5; ++id) fs.fleet.changes.emplace_back().set_id(id);
  v1::ListPolicyChangesResponse all;
  REQUIRE(FetchPolicyChanges(fs.Calls(2), &all).ok());
  std::vector<uint64_t> ids;
  for (const auto& c : all.changes()) ids.push_back(c.id());
  CHECK(ids == std::vector<uint64_t>{1, 2, 3, 4, 5});
  CHECK(fs.fleet.Asked() == std::vector<uint32_t>{2, 2, 2});
  CHECK(all.current_version() == 3);  // from the last call

  fs.fleet.changes.emplace_back().set_id(6);
  v1::ListPolicyChangesResponse even;
  REQUIRE(FetchPolicyChanges(fs.Calls(2), &even).ok());
  CHECK(even.changes_size() == 6);  // a full last page is followed by an empty one

  fs.fleet.changes = {};
  v1::ListPolicyChangesResponse none;
  REQUIRE(FetchPolicyChanges(fs.Calls(5000), &none).ok());
  CHECK(fs.fleet.Asked().back() == 1000);  // never more than the server's maximum
}

TEST_CASE("export: CSV and JSON Lines into a file; a failed stream leaves the file alone") {
  FakeServer fs;
  fs.fleet.records = {TwoCheckRecord(), TwoCheckRecord()};
  fs.fleet.records[1].set_sequence(8);
  TempDir dir("vigil-ctl");
  const std::string path = dir / "evidence.csv";

  {
    auto out = AtomicFileOutput(path);
    REQUIRE(out.ok());
    ExportResult r = StreamExport(fs.Calls(1000), v1::ExportRequest(), "csv", **out);
    REQUIRE(r.ok());
    CHECK(r.records == 2);
    CHECK(r.rows == 4);
    REQUIRE((*out)->Commit().ok());
  }
  std::string csv = *ReadWholeFile(path);
  CHECK(csv.rfind(CsvRecord(ExportCsvHeader()), 0) == 0);
  CHECK(Contains(csv, CsvRecord(ExportCsvRows(fs.fleet.records[1])[1])));

  {
    auto out = AtomicFileOutput(dir / "evidence.jsonl");
    REQUIRE(out.ok());
    ExportResult r = StreamExport(fs.Calls(1000), v1::ExportRequest(), "json", **out);
    REQUIRE(r.ok());
    REQUIRE((*out)->Commit().ok());
  }
  std::istringstream lines(*ReadWholeFile(dir / "evidence.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    v1::ExportRecord back;
    REQUIRE(ParseJsonStrict(line, &back, "line").ok());
    CHECK(back.checks_size() == 2);
    ++n;
  }
  CHECK(n == 2);

  fs.fleet.fail_export_after = 1;
  {
    auto out = AtomicFileOutput(path);
    REQUIRE(out.ok());
    ExportResult r = StreamExport(fs.Calls(1000), v1::ExportRequest(), "csv", **out);
    CHECK(!r.ok());
    CHECK(r.rpc.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(r.records == 1);
  }
  CHECK(*ReadWholeFile(path) == csv);  // the earlier, complete report
}

}  // namespace
}  // namespace vigil::ctl

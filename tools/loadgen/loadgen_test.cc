#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "proto/signing.h"
#include "tools/loadgen/loadgen_lib.h"

namespace vigil::loadgen {
namespace {

Result<Options> Parse(std::vector<std::string> args, bool* help = nullptr) {
  args.insert(args.begin(), "vigil-loadgen");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  bool h = false;
  return ParseOptions(static_cast<int>(argv.size()), argv.data(), help ? help : &h);
}

TEST_CASE("defaults") {
  auto o = Parse({"--bundle", "b.json"});
  REQUIRE(o.ok());
  CHECK(o->bundle_path == "b.json");
  CHECK(o->server.empty());
  CHECK(o->agents == 100);
  CHECK(o->duration_s == 10);
  CHECK(o->rate == 0);
  CHECK(o->batch == 1);
  CHECK(o->connections == 4);
  CHECK(o->threads >= 1);
  CHECK(o->timeout_s == 10);
  CHECK_FALSE(o->insecure);
  CHECK_FALSE(o->mtls);
  CHECK_FALSE(o->json);
}

TEST_CASE("every flag") {
  auto o = Parse({"--bundle=b", "--server",  "127.0.0.1:9", "--agents",  "64", "--duration",
                  "2.5",        "--rate",    "1500.5",      "--batch",   "10", "--connections",
                  "8",          "--threads", "3",           "--timeout", "5",  "--server-pid",
                  "42",         "--mtls",    "--json"});
  REQUIRE(o.ok());
  CHECK(o->server == "127.0.0.1:9");
  CHECK(o->agents == 64);
  CHECK(o->duration_s == 2.5);
  CHECK(o->rate == 1500.5);
  CHECK(o->batch == 10);
  CHECK(o->connections == 8);
  CHECK(o->threads == 3);
  CHECK(o->timeout_s == 5);
  CHECK(o->server_pid == 42);
  CHECK(o->mtls);
  CHECK(o->json);
}

TEST_CASE("help needs nothing else") {
  bool help = false;
  auto o = Parse({"--help"}, &help);
  CHECK(o.ok());
  CHECK(help);
}

TEST_CASE("bad flags are refused and the message names the flag") {
  struct Row {
    std::vector<std::string> args;
    std::string names;
  };
  const Row rows[] = {
      {{}, "--bundle"},
      {{"--bundle"}, "--bundle"},
      {{"--bundle", "b", "--agents", "0"}, "--agents"},
      {{"--bundle", "b", "--agents", "ten"}, "--agents"},
      {{"--bundle", "b", "--agents", "-1"}, "--agents"},
      {{"--bundle", "b", "--batch", "101"}, "--batch"},
      {{"--bundle", "b", "--batch", "0"}, "--batch"},
      {{"--bundle", "b", "--duration", "0"}, "--duration"},
      {{"--bundle", "b", "--duration", "1s"}, "--duration"},
      {{"--bundle", "b", "--duration", "nan"}, "--duration"},
      {{"--bundle", "b", "--rate", "-5"}, "--rate"},
      {{"--bundle", "b", "--rate", "0.1", "--duration", "1", "--batch", "10"}, "--rate"},
      {{"--bundle", "b", "--connections", "0"}, "--connections"},
      {{"--bundle", "b", "--threads", "0"}, "--threads"},
      {{"--bundle", "b", "--timeout", "0"}, "--timeout"},
      {{"--bundle", "b", "--server", "nohost"}, "--server"},
      {{"--bundle", "b", "--insecure", "--mtls"}, "--mtls"},
      {{"--bundle", "b", "--agnets", "5"}, "--agnets"},
      {{"--bundle", "b", "--json=yes"}, "--json"},
      {{"--bundle", "b", "extra"}, "extra"},
  };
  for (const auto& row : rows) {
    auto o = Parse(row.args);
    CAPTURE(row.names);
    REQUIRE_FALSE(o.ok());
    CHECK(o.status().code() == Status::Code::kInvalidArgument);
    CHECK(o.status().message().find(row.names) != std::string::npos);
  }
}

TEST_CASE("loopback") {
  CHECK(IsLoopback("127.0.0.1:7400"));
  CHECK(IsLoopback("127.1.2.3:1"));
  CHECK(IsLoopback("localhost:7400"));
  CHECK(IsLoopback("[::1]:7400"));
  CHECK_FALSE(IsLoopback("10.0.0.1:7400"));
  CHECK_FALSE(IsLoopback("vigil.example.com:7400"));
}

TEST_CASE("open loop: calls over the fleet are batch/rate apart, agents in turn") {
  Options o;
  o.agents = 4;
  o.batch = 2;
  o.rate = 100;  // 50 calls a second: one every 20 ms
  using std::chrono::milliseconds;
  CHECK(OpenLoopOffset(o, 0, 0) == milliseconds(0));
  CHECK(OpenLoopOffset(o, 1, 0) == milliseconds(20));
  CHECK(OpenLoopOffset(o, 3, 0) == milliseconds(60));
  CHECK(OpenLoopOffset(o, 0, 1) == milliseconds(80));  // each agent every 4 slots
  CHECK(OpenLoopOffset(o, 2, 5) == milliseconds((2 + 5 * 4) * 20));
}

TEST_CASE("percentiles: nearest rank") {
  std::vector<int64_t> v;
  CHECK(Percentile(v, 50) == 0);
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  CHECK(Percentile(v, 50) == 50);
  CHECK(Percentile(v, 90) == 90);
  CHECK(Percentile(v, 99) == 99);
  CHECK(Percentile(v, 100) == 100);
  CHECK(Percentile({7}, 99) == 7);
  CHECK(Percentile({1, 2}, 50) == 1);
  CHECK(Percentile({1, 2}, 51) == 2);
}

TEST_CASE("the sample attestation: three checks with evidence, a typical size, signs") {
  v1::Attestation a = SampleAttestation("dev-0123456789abcdef0123", 7);
  a.set_sequence(1);
  a.mutable_issued_at()->set_seconds(1700000000);
  REQUIRE(a.checks_size() == 3);
  CHECK(a.checks(0).check() == "screen_lock");
  CHECK(a.checks(0).evidence().has_screen_lock());
  CHECK(a.checks(1).check() == "password_policy");
  CHECK(a.checks(1).evidence().has_password_policy());
  CHECK(a.checks(2).check() == "usb_storage");
  CHECK(a.checks(2).evidence().has_usb_storage());
  CHECK(a.platform().hostname() == "loadgen-00007");
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  auto s = signing::SignAttestation(a, *key);
  REQUIRE(s.ok());
  CHECK(s->ByteSizeLong() > 1000);
  CHECK(s->ByteSizeLong() < 4000);
  auto back = signing::VerifyAttestation(*s, key->PublicKey());
  REQUIRE(back.ok());
  CHECK(back->device_id() == "dev-0123456789abcdef0123");
}

TEST_CASE("merge, exit figures and both reports") {
  RunStats a, b;
  a.reports = 2;
  a.attestations_sent = 2;
  a.acked_ok = 2;
  a.latency_us = {1000, 3000};
  b.reports = 2;
  b.attestations_sent = 3;
  b.acked_ok = 1;
  b.rejected_by_code[8] = 1;
  b.rpc_errors[14] = 1;
  b.rpc_failed_attestations = 1;
  b.first_message["ack 8"] = "rate \"limited\"";
  b.latency_us = {2000};
  a.Merge(std::move(b));
  CHECK(a.reports == 4);
  CHECK(a.attestations_sent == 5);
  CHECK(a.acked_ok == 3);
  CHECK(a.NotOk() == 2);
  CHECK(a.rejected_by_code.at(8) == 1);
  CHECK(a.rpc_errors.at(14) == 1);
  std::sort(a.latency_us.begin(), a.latency_us.end());
  CHECK(Percentile(a.latency_us, 50) == 2000);

  Options o;
  o.agents = 2;
  Summary s;
  s.server = "127.0.0.1:1";
  s.transport = "TLS";
  s.run_s = 1;
  std::string text = FormatText(o, s, a);
  CHECK(text.find("acknowledged OK (0)     3") != std::string::npos);
  CHECK(text.find("8 RESOURCE_EXHAUSTED: 1") != std::string::npos);
  CHECK(text.find("--report-rate 0") != std::string::npos);
  CHECK(text.find("14 UNAVAILABLE: 1") != std::string::npos);
  CHECK(text.find("2 of 5 attestations NOT acknowledged OK") != std::string::npos);
  std::string json = FormatJson(o, s, a);
  CHECK(json.find("\"acked_ok\": 3") != std::string::npos);
  CHECK(json.find("\"rejected\": {\"RESOURCE_EXHAUSTED\": 1}") != std::string::npos);
  CHECK(json.find("rate \\\"limited\\\"") != std::string::npos);
  CHECK(json.find("\"ok\": false") != std::string::npos);
}

TEST_CASE("code names") {
  CHECK(CodeName(0) == "OK");
  CHECK(CodeName(6) == "ALREADY_EXISTS");
  CHECK(CodeName(16) == "UNAUTHENTICATED");
  CHECK(CodeName(42) == "42");
}

}  // namespace
}  // namespace vigil::loadgen

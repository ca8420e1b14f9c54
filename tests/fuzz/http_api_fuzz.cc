// The HTTPS API's request handling on hostile input, with a real (in-memory) SQLite store and a
// device and policy version 1 in it: fuzzer-made methods, targets (paths, query strings,
// percent-encoding, device, change and exception ids) and JSON bodies, with a valid admin or
// approver token so parsing reaches every route (the policy changes and exceptions included), or
// none. The first byte picks the method (bits 0-2), whether a token is sent (bit 3 clear) and
// which (bit 4: the approver's, else the admin's); the rest is "TARGET\nBODY". Nothing may
// crash, and every answer must be a well-formed status with a JSON error on failure.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/http_api.h"
#include "server/policy_changes.h"
#include "server/policy_state.h"
#include "server/sqlite_store.h"

namespace {

using namespace vigil;
using namespace vigil::server;

struct Server {
  FakeClock clock{1'800'000'000'000};
  Counters counters;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<PolicyState> policy_state;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  std::unique_ptr<PolicyChanges> changes;
  Histogram duration{Histogram::LatencyBuckets()};
  std::unique_ptr<HttpApi> api;
  v1::Policy policy;
  std::string token;           // admin: proposes, applies, requests exceptions
  std::string approver_token;  // another person: approves

  Server() {
    spdlog::set_level(spdlog::level::off);
    store = std::move(OpenSqliteStore(":memory:")).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    token = *credentials->Create(CredentialKind::kToken, "fuzz", static_cast<int>(Role::kAdmin), 0,
                                 "fuzz");
    approver_token = *credentials->Create(CredentialKind::kToken, "fuzz-approver",
                                          static_cast<int>(Role::kApprover), 0, "fuzz");
    AggregatorOptions opts;
    opts.reports_per_minute = 0;
    opts.failed_auth_per_minute = 0;
    policy.set_checkin_window_seconds(3600);
    // Version 1 in the store, as the server's start-up makes it.
    policy_state = std::make_unique<PolicyState>(
        std::move(PolicyChanges::Bootstrap(*store, clock, PolicySetOf(policy), "fuzz")).value());
    aggregator =
        std::make_unique<Aggregator>(*store, clock, *credentials, counters, *policy_state, opts);
    DeviceRecord d;
    d.id = "dev-fuzz";
    d.key_id = std::string(32, 'k');
    d.public_key = std::string(32, 'p');
    d.hostname = "fuzz-host";
    d.enrolled_at_ms = clock.NowMillis();
    d.status = v1::UNKNOWN;
    store->InsertDevice(d, AuditRecord{clock.NowMillis(), "fuzz", "device.enroll", d.id, "", true});
    fleet = std::make_unique<Fleet>(*store, clock, *policy_state, counters);
    changes = std::make_unique<PolicyChanges>(*store, clock, *policy_state, counters);
    api =
        std::make_unique<HttpApi>(*fleet, *changes, *credentials, *aggregator, counters, duration);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Server* s = new Server();
  if (size < 1) return 0;
  static const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", ""};
  HttpRequest req;
  req.method = kMethods[data[0] & 7];
  if ((data[0] & 8) == 0) {
    req.authorization = "Bearer " + ((data[0] & 16) ? s->approver_token : s->token);
  }
  req.peer = "ipv4:127.0.0.1:4242";
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t nl = rest.find('\n');
  req.target = rest.substr(0, nl);
  if (nl != std::string::npos) req.body = rest.substr(nl + 1);
  HttpResponse resp = s->api->Handle(req);
  if (resp.status < 100 || resp.status > 599) std::abort();
  if (resp.status >= 400 && resp.body.find("\"error\"") == std::string::npos) std::abort();
  return 0;
}

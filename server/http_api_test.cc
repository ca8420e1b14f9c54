// The HTTPS API (http_api.h) over real TLS on 127.0.0.1 with a Boost.Beast client that trusts
// only the test's CA: tokens and roles, each route's JSON, malformed input, limits, /metrics
// and the dashboard's files. The metrics' Histogram and text format are tested on their own.
#include "server/http_api.h"

#include <doctest/doctest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "collectors/collectors.h"
#include "common/temp_dir.h"
#include "proto/json.h"
#include "proto/pki.h"
#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/metrics.h"
#include "server/policy_changes.h"
#include "server/policy_state.h"
#include "server/sqlite_store.h"
#include "server/tls.h"

namespace vigil::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr int64_t kStart = 1'800'000'000'000;

struct Response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One request per connection, verifying the server's certificate against `ca_pem` for
// 127.0.0.1.
class Client {
 public:
  Client(const std::string& ca_pem, uint16_t port) : port_(port) {
    ctx_.set_verify_mode(ssl::verify_peer);
    ctx_.add_certificate_authority(asio::buffer(ca_pem));
  }

  Response Do(http::verb verb, const std::string& target, const std::string& token = "",
              const std::string& body = "", const std::map<std::string, std::string>& extra = {}) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    for (const auto& [k, v] : extra) req.set(k, v);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    return Send(req);
  }
  Response Get(const std::string& target, const std::string& token = "") {
    return Do(http::verb::get, target, token);
  }

  template <typename Req>
  Response Send(Req& req) {
    beast::ssl_stream<beast::tcp_stream> stream(io_, ctx_);
    Connect(stream);
    http::write(stream, req);
    return Read(stream);
  }

  void Connect(beast::ssl_stream<beast::tcp_stream>& stream) {
    stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(stream).connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    stream.handshake(ssl::stream_base::client);
  }

  static Response Read(beast::ssl_stream<beast::tcp_stream>& stream) {
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    Response out;
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    beast::error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    return out;
  }

  asio::io_context& io() { return io_; }
  ssl::context& ctx() { return ctx_; }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  asio::io_context io_;
  ssl::context ctx_{ssl::context::tls_client};
};

// A clean attestation is COMPLIANT; one whose usb_storage evidence carries a collection error is
// NON_COMPLIANT (the policy has only a check-in window: every check is otherwise N/A).
v1::Attestation Att(const std::string& device_id, uint64_t seq, bool failing) {
  v1::Attestation a;
  a.set_device_id(device_id);
  a.set_sequence(seq);
  a.mutable_issued_at()->set_seconds(kStart / 1000);
  a.mutable_platform()->set_os("linux");
  for (const char* id :
       {collectors::kScreenLock, collectors::kPasswordPolicy, collectors::kUsbStorage}) {
    auto* c = a.add_checks();
    c->set_check(id);
    c->set_status(v1::PASS);
    if (failing && std::string(id) == collectors::kUsbStorage) {
      c->mutable_evidence()->set_collection_error("cannot read /proc/modules");
    } else {
      c->mutable_evidence()->mutable_usb_storage();
    }
  }
  return a;
}

struct Harness {
  TempDir dir{"vigil-http"};  // first, so it outlives the store
  FakeClock clock{kStart};
  Counters counters;
  Histogram report_duration{Histogram::LatencyBuckets()};
  v1::Policy policy;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<PolicyState> policy_state;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  std::unique_ptr<PolicyChanges> changes;
  std::unique_ptr<HttpApi> api;
  std::unique_ptr<HttpServer> server;
  TlsMaterial tls;
  std::string viewer, admin, approver;
  std::string compliant_id, failing_id;

  explicit Harness(HttpServerOptions options = {}) {
    auto s = OpenSqliteStore(dir / "vigil.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    policy.set_checkin_window_seconds(3600);
    AggregatorOptions opts;
    opts.reports_per_minute = 0;
    // Version 1 in the store, as the server's start-up makes it.
    auto snapshot = PolicyChanges::Bootstrap(*store, clock, PolicySetOf(policy), "test");
    REQUIRE_MESSAGE(snapshot.ok(), snapshot.status().ToString());
    policy_state = std::make_unique<PolicyState>(std::move(snapshot).value());
    aggregator =
        std::make_unique<Aggregator>(*store, clock, *credentials, counters, *policy_state, opts);
    fleet = std::make_unique<Fleet>(*store, clock, *policy_state, counters);
    changes = std::make_unique<PolicyChanges>(*store, clock, *policy_state, counters);
    auto t = CreateTlsMaterial(dir.path(), {"127.0.0.1", "localhost"},
                               std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
    REQUIRE(t.ok());
    tls = *t;
    viewer = Token("viewer", Role::kViewer);
    admin = Token("admin", Role::kAdmin);
    approver = Token("approver", Role::kApprover);
    api = std::make_unique<HttpApi>(*fleet, *changes, *credentials, *aggregator, counters,
                                    report_duration);
    options.listen = "127.0.0.1:0";
    auto started = HttpServer::Start(options, tls.server, *api, counters);
    REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    server = std::move(started).value();
  }

  ~Harness() {
    server.reset();  // stops serving before what it uses goes
    api.reset();
    changes.reset();
    fleet.reset();
    aggregator.reset();
    policy_state.reset();
    credentials.reset();
    store.reset();
  }

  std::string Token(const std::string& name, Role role) {
    auto t = credentials->Create(CredentialKind::kToken, name, static_cast<int>(role), 0, "test");
    REQUIRE(t.ok());
    return *t;
  }

  // Two devices: one COMPLIANT, one NON_COMPLIANT (usb_storage ERROR).
  void AddDevices() {
    auto secret = credentials->Create(CredentialKind::kEnrollSecret, "fleet", 0, 0, "test");
    REQUIRE(secret.ok());
    for (bool failing : {false, true}) {
      auto key = signing::DeviceKey::Generate();
      REQUIRE(key.ok());
      v1::EnrollRequest req;
      req.set_enroll_secret(*secret);
      req.set_public_key(key->PublicKey());
      req.set_hostname(failing ? "laptop-bad" : "laptop-good");
      auto enrolled = aggregator->Enroll(req);
      REQUIRE(enrolled.ok());
      const std::string id = enrolled->device_id();
      for (uint64_t seq = 1; seq <= 2; ++seq) {
        auto signed_att = signing::SignAttestation(Att(id, seq, failing && seq == 2), *key);
        REQUIRE(signed_att.ok());
        v1::ReportRequest report;
        *report.add_attestations() = *signed_att;
        auto r = aggregator->Report(report);
        REQUIRE(r.ok());
        REQUIRE(r->acks(0).code() == 0);
      }
      (failing ? failing_id : compliant_id) = id;
    }
  }

  Client NewClient() { return Client(tls.ca.cert_pem, server->port()); }
};

template <typename M>
M Parse(const Response& r) {
  M msg;
  Status s = ParseJsonStrict(r.body, &msg, "response");
  const std::string what = s.ToString() + " in " + r.body;
  REQUIRE_MESSAGE(s.ok(), what);
  return msg;
}

std::string ErrorCode(const Response& r) {
  std::smatch m;
  static const std::regex re(R"re(^\{"error":\{"code":"([A-Z_]+)","message":".*"\}\}\n$)re");
  if (!std::regex_match(r.body, m, re)) return "not an error body: " + r.body;
  return m[1];
}

TEST_CASE("HTTPS API: no token, a forged token and the wrong role are refused and audited") {
  Harness h;
  Client c = h.NewClient();

  Response none = c.Get("/api/v1/summary");
  CHECK(none.status == 401);
  CHECK(ErrorCode(none) == "UNAUTHENTICATED");
  CHECK(none.Header("www-authenticate") == "Bearer");
  CHECK(h.counters.Get("auth.rejected.no_token") == 1);

  Response forged = c.Get("/api/v1/summary", "vgt_0123456789ab_forged");
  CHECK(forged.status == 401);
  CHECK(forged.body.find("forged") == std::string::npos);  // never echoes the presented token
  Response not_bearer =
      c.Do(http::verb::get, "/api/v1/summary", "", "", {{"Authorization", "Basic dXNlcjpwYXNz"}});
  CHECK(not_bearer.status == 401);
  CHECK(h.counters.Get("auth.rejected.bad_token") == 2);

  // A revoked token is no token: 401, not 403.
  std::string old = h.Token("old", Role::kAdmin);
  REQUIRE(h.credentials->Revoke(CredentialKind::kToken, "old", "test").ok());
  CHECK(c.Get("/api/v1/summary", old).status == 401);

  Response viewer_revoke =
      c.Do(http::verb::post, "/api/v1/devices/x:revoke", h.viewer, R"({"reason": "lost"})");
  CHECK(viewer_revoke.status == 403);
  CHECK(ErrorCode(viewer_revoke) == "PERMISSION_DENIED");
  CHECK(c.Get("/api/v1/audit", h.viewer).status == 403);
  CHECK(c.Do(http::verb::put, "/api/v1/devices/x/tags", h.viewer, R"({"tags": ["a"]})").status ==
        403);
  CHECK(h.counters.Get("auth.rejected.forbidden") == 3);

  CHECK(c.Get("/api/v1/summary", h.viewer).status == 200);
  CHECK(c.Get("/metrics", h.viewer).status == 200);
  CHECK(c.Get("/metrics").status == 401);
  Response audit = c.Get("/api/v1/audit?limit=100", h.approver);
  REQUIRE(audit.status == 200);
  auto entries = Parse<v1::ListAuditResponse>(audit);
  int failed = 0;
  for (const auto& e : entries.entries()) {
    if (e.action() == "auth.failed") {
      ++failed;
      CHECK(e.actor().rfind("peer:ipv4:127.0.0.1:", 0) == 0);
      CHECK(e.detail().find("(HTTPS)") != std::string::npos);
    }
  }
  CHECK(failed >= 7);
}

TEST_CASE("HTTPS API: too many failed authentications from one address answer 429") {
  Harness h;
  Client c = h.NewClient();
  int last = 0;
  for (int i = 0; i < 30 && last != 429; ++i) last = c.Get("/api/v1/summary", "vgt_x").status;
  CHECK(last == 429);
  CHECK(h.counters.Get("auth.rejected.rate_limited") >= 1);
}

TEST_CASE("HTTPS API: each route answers with its FleetService message in JSON") {
  Harness h;
  h.AddDevices();
  Client c = h.NewClient();

  Response list = c.Get("/api/v1/devices", h.viewer);
  REQUIRE(list.status == 200);
  CHECK(list.Header("content-type") == "application/json");
  CHECK(list.Header("cache-control") == "no-store");
  CHECK(list.Header("content-security-policy").find("default-src 'self'") == 0);
  CHECK(Parse<v1::ListDevicesResponse>(list).devices_size() == 2);

  auto failing = Parse<v1::ListDevicesResponse>(
      c.Get("/api/v1/devices?status=NON_COMPLIANT&os=linux&limit=10", h.viewer));
  REQUIRE(failing.devices_size() == 1);
  CHECK(failing.devices(0).device_id() == h.failing_id);
  CHECK(failing.devices(0).failing_checks(0) == "usb_storage");
  auto by_check =
      Parse<v1::ListDevicesResponse>(c.Get("/api/v1/devices?failingCheck=usb_storage", h.viewer));
  CHECK(by_check.devices_size() == 1);
  // Empty values are "not given" (the dashboard's "any status").
  CHECK(Parse<v1::ListDevicesResponse>(c.Get("/api/v1/devices?status=&tag=", h.viewer))
            .devices_size() == 2);
  auto page = Parse<v1::ListDevicesResponse>(c.Get("/api/v1/devices?limit=1", h.viewer));
  REQUIRE(page.devices_size() == 1);
  REQUIRE(!page.next_page_token().empty());
  auto rest = Parse<v1::ListDevicesResponse>(
      c.Get("/api/v1/devices?limit=1&pageToken=" + page.next_page_token(), h.viewer));
  REQUIRE(rest.devices_size() == 1);
  CHECK(rest.devices(0).device_id() != page.devices(0).device_id());
  // Seen at kStart (fake clock): "not seen since" a later time finds both, an earlier none.
  CHECK(Parse<v1::ListDevicesResponse>(
            c.Get("/api/v1/devices?notSeenSince=2099-01-01T00:00:00Z", h.viewer))
            .devices_size() == 2);
  CHECK(Parse<v1::ListDevicesResponse>(
            c.Get("/api/v1/devices?notSeenSince=2020-01-01T00:00:00Z", h.viewer))
            .devices_size() == 0);

  Response one = c.Get("/api/v1/devices/" + h.failing_id + "?historyLimit=1", h.viewer);
  REQUIRE(one.status == 200);
  auto device = Parse<v1::GetDeviceResponse>(one);
  CHECK(device.device().status() == v1::NON_COMPLIANT);
  CHECK(device.history_size() == 1);
  bool usb_error = false;
  for (const auto& check : device.checks()) {
    if (check.check() == "usb_storage") usb_error = check.status() == v1::ERROR;
  }
  CHECK(usb_error);
  CHECK(one.body.find("\"status\":\"NON_COMPLIANT\"") != std::string::npos);  // enums by name
  CHECK(c.Get("/api/v1/devices/no-such-device", h.viewer).status == 404);

  Response history = c.Get("/api/v1/devices/" + h.failing_id + "/history?limit=10", h.viewer);
  REQUIRE_MESSAGE(history.status == 200, history.body);
  auto entries = Parse<v1::DeviceHistoryResponse>(history);
  REQUIRE(entries.entries_size() == 2);
  CHECK(entries.entries(0).sequence() == 2);  // newest first
  auto older = Parse<v1::DeviceHistoryResponse>(
      c.Get("/api/v1/devices/" + h.failing_id + "/history?beforeSequence=2", h.viewer));
  REQUIRE(older.entries_size() == 1);
  CHECK(older.entries(0).sequence() == 1);

  auto summary = Parse<v1::SummaryResponse>(c.Get("/api/v1/summary", h.viewer));
  CHECK(summary.total() == 2);

  Response alerts = c.Get("/api/v1/alerts?afterId=0&limit=10", h.viewer);
  REQUIRE_MESSAGE(alerts.status == 200, alerts.body);
  auto alert_list = Parse<v1::ListAlertsResponse>(alerts);
  bool raised = false;
  for (const auto& a : alert_list.alerts()) raised = raised || a.device_id() == h.failing_id;
  CHECK(raised);
  CHECK(Parse<v1::ListAlertsResponse>(c.Get("/api/v1/alerts?deviceId=" + h.compliant_id, h.viewer))
            .alerts_size() == 0);

  auto stats = Parse<v1::ServerStatsResponse>(c.Get("/api/v1/stats", h.viewer));
  bool accepted = false;
  for (const auto& counter : stats.counters()) {
    accepted = accepted || (counter.name() == "report.accepted" && counter.value() == 4);
  }
  CHECK(accepted);

  // Changes: tags, revocation (audited with the token's name), approval of a revoked device.
  Response tags = c.Do(http::verb::put, "/api/v1/devices/" + h.compliant_id + "/tags", h.admin,
                       R"({"tags": ["team-eng", "laptop"]})");
  REQUIRE_MESSAGE(tags.status == 200, tags.body);
  auto tagged = Parse<v1::DeviceActionResponse>(tags);
  CHECK(tagged.device().tags_size() == 2);
  CHECK(Parse<v1::ListDevicesResponse>(c.Get("/api/v1/devices?tag=team-eng", h.viewer))
            .devices_size() == 1);
  CHECK(c.Do(http::verb::put, "/api/v1/devices/" + h.compliant_id + "/tags", h.admin,
             R"({"tags": ["no spaces allowed"]})")
            .status == 400);

  CHECK(
      c.Do(http::verb::post, "/api/v1/devices/" + h.failing_id + ":revoke", h.admin, "{}").status ==
      400);  // a reason is required
  Response revoked = c.Do(http::verb::post, "/api/v1/devices/" + h.failing_id + ":revoke", h.admin,
                          R"({"reason": "lost on a train"})");
  REQUIRE_MESSAGE(revoked.status == 200, revoked.body);
  CHECK(Parse<v1::DeviceActionResponse>(revoked).device().status() == v1::REVOKED);
  Response approve =
      c.Do(http::verb::post, "/api/v1/devices/" + h.failing_id + ":approve", h.admin);
  CHECK(approve.status == 409);
  CHECK(ErrorCode(approve) == "FAILED_PRECONDITION");
  CHECK(c.Do(http::verb::post, "/api/v1/devices/nope:approve", h.admin).status == 404);
  CHECK(c.Do(http::verb::post, "/api/v1/devices/" + h.compliant_id + ":approve", h.admin,
             R"({"deviceId": "someone-else"})")
            .status == 400);

  auto audit = Parse<v1::ListAuditResponse>(c.Get("/api/v1/audit?afterId=0&limit=1000", h.admin));
  bool logged = false;
  for (const auto& e : audit.entries()) {
    logged = logged || (e.action() == "device.revoke" && e.target() == h.failing_id &&
                        e.actor() == "token:admin (admin)" && e.detail() == "lost on a train");
  }
  CHECK(logged);
  auto after = Parse<v1::ListAuditResponse>(
      c.Get("/api/v1/audit?afterId=" + std::to_string(audit.entries(0).id()), h.admin));
  CHECK(after.entries_size() == audit.entries_size() - 1);
}

TEST_CASE("HTTPS API: malformed queries and bodies are 400, unknown paths 404, wrong methods 405") {
  Harness h;
  Client c = h.NewClient();
  for (const char* target : {
           "/api/v1/devices?limit=abc",
           "/api/v1/devices?limit=-1",
           "/api/v1/devices?limit=99999999999",
           "/api/v1/devices?status=BOGUS",
           "/api/v1/devices?notSeenSince=yesterday",
           "/api/v1/devices?colour=red",
           "/api/v1/devices?failing_check=usb_storage",  // proto names are not the API's
           "/api/v1/devices?limit=1&limit=2",
           "/api/v1/devices?os=%zz",
           "/api/v1/summary?x=1",
           "/api/v1/audit?afterId=x",
           "/api/v1/devices/abc?history=1",
           "/api/v1/devices/a%0Ab",  // device ids are printable
           "/api/v1/devices/a%zz/history",
       }) {
    CAPTURE(target);
    Response r = c.Get(target, h.admin);
    CHECK(r.status == 400);
    CHECK(ErrorCode(r) == "INVALID_ARGUMENT");
  }
  CHECK(c.Get("/api/v1/devices?colour=red", h.admin).body.find("colour") != std::string::npos);
  CHECK(c.Do(http::verb::post, "/api/v1/devices/x:revoke", h.admin, "{not json").status == 400);
  CHECK(c.Do(http::verb::post, "/api/v1/devices/x:revoke", h.admin, R"({"reason": 1, "x": 2})")
            .status == 400);

  for (const char* target :
       {"/api/v1/nothing", "/api/v2/devices", "/api/v1/devices/a/b/c", "/nothing", "/index.php"}) {
    CAPTURE(target);
    Response r = c.Get(target, h.admin);
    CHECK(r.status == 404);
    CHECK(ErrorCode(r) == "NOT_FOUND");
  }
  Response wrong = c.Do(http::verb::delete_, "/api/v1/devices", h.admin);
  CHECK(wrong.status == 405);
  CHECK(wrong.Header("allow") == "GET");
  CHECK(c.Do(http::verb::get, "/api/v1/devices/x:revoke", h.admin).status == 405);
  CHECK(c.Do(http::verb::post, "/metrics", h.admin).status == 405);
}

// Counts of `status` in a StatusCount list (PolicyImpact, ComplianceSnapshot).
uint64_t CountOf(const google::protobuf::RepeatedPtrField<v1::StatusCount>& counts,
                 v1::DeviceStatus status) {
  for (const auto& c : counts) {
    if (c.status() == status) return c.count();
  }
  return 0;
}

// Requires screen_lock: the test devices carry no screen_lock evidence, so both fail it (ERROR)
// and the compliant one becomes NON_COMPLIANT.
constexpr const char* kProposal = R"({
  "policySet": {"defaultPolicy": {"checkinWindowSeconds": 3600, "screenLock": {"maxIdleSeconds": 300}}},
  "reason": "lock idle screens", "rollbackPlan": "roll back to version 1"})";

TEST_CASE(
    "HTTPS API: a policy change proposed, previewed, approved by another person, applied, "
    "rolled back and reviewed") {
  Harness h;
  h.AddDevices();
  const std::string alice = h.Token("alice", Role::kAdmin);
  const std::string alice_approver = h.Token("alice+approver", Role::kApprover);
  const std::string bob = h.Token("bob", Role::kApprover);
  Client c = h.NewClient();
  auto status_of = [&](const std::string& id) {
    return Parse<v1::GetDeviceResponse>(c.Get("/api/v1/devices/" + id, h.viewer)).device().status();
  };

  // Version 1, from the harness's start-up.
  Response current = c.Get("/api/v1/policy", h.viewer);
  REQUIRE_MESSAGE(current.status == 200, current.body);
  auto v1_info = Parse<v1::PolicyVersionInfo>(current);
  CHECK(v1_info.version() == 1);
  CHECK(v1_info.policy_set().default_policy().checkin_window_seconds() == 3600);
  CHECK(v1_info.applied_by() == "test");
  CHECK(Parse<v1::PolicyVersionInfo>(c.Get("/api/v1/policy?version=1", h.viewer)).set_version() ==
        v1_info.set_version());
  CHECK(c.Get("/api/v1/policy?version=7", h.viewer).status == 404);
  Response device_policy = c.Get("/api/v1/devices/" + h.compliant_id + "/policy", h.viewer);
  REQUIRE_MESSAGE(device_policy.status == 200, device_policy.body);
  auto dp = Parse<v1::DevicePolicyResponse>(device_policy);
  CHECK(dp.device_id() == h.compliant_id);
  CHECK(dp.version() == 1);
  CHECK(dp.os() == "linux");
  CHECK(c.Get("/api/v1/devices/no-such-device/policy", h.viewer).status == 404);

  // Proposed by alice (admin).
  Response proposed = c.Do(http::verb::post, "/api/v1/policy/changes", alice, kProposal);
  REQUIRE_MESSAGE(proposed.status == 200, proposed.body);
  CHECK(proposed.body.find("\"state\":\"PROPOSED\"") != std::string::npos);
  auto change = Parse<v1::PolicyChange>(proposed);
  CHECK(change.kind() == v1::CHANGE);
  CHECK(change.base_version() == 1);
  CHECK(change.proposed_by() == "token:alice (admin)");
  CHECK(change.diff_size() > 0);
  const std::string path = "/api/v1/policy/changes/" + std::to_string(change.id());
  auto fetched = Parse<v1::PolicyChange>(c.Get(path, h.viewer));
  CHECK(fetched.id() == change.id());
  CHECK(fetched.state() == v1::PROPOSED);
  auto history = Parse<v1::ListPolicyChangesResponse>(c.Get("/api/v1/policy/changes", h.viewer));
  REQUIRE(history.changes_size() == 2);
  CHECK(history.changes(0).kind() == v1::INITIAL);
  CHECK(history.changes(1).id() == change.id());
  CHECK(history.current_version() == 1);
  auto after_first = Parse<v1::ListPolicyChangesResponse>(c.Get(
      "/api/v1/policy/changes?afterId=" + std::to_string(history.changes(0).id()) + "&limit=10",
      h.viewer));
  REQUIRE(after_first.changes_size() == 1);
  CHECK(after_first.changes(0).id() == change.id());

  // The preview: the compliant device would become NON_COMPLIANT.
  Response preview = c.Get(path + "/preview?deviceLimit=10", h.approver);
  REQUIRE_MESSAGE(preview.status == 200, preview.body);
  auto impact = Parse<v1::PolicyImpact>(preview);
  CHECK(impact.change_id() == change.id());
  CHECK(impact.devices() == 2);
  CHECK(impact.changed() == 1);
  REQUIRE(impact.devices_changed_size() == 1);
  CHECK(impact.devices_changed(0).device_id() == h.compliant_id);
  CHECK(impact.devices_changed(0).before() == v1::COMPLIANT);
  CHECK(impact.devices_changed(0).after() == v1::NON_COMPLIANT);
  CHECK(CountOf(impact.after(), v1::NON_COMPLIANT) == 2);
  CHECK(status_of(h.compliant_id) == v1::COMPLIANT);  // a preview changes nothing

  // Not applied before it is approved; not approved by its proposer's other token, nor by an
  // admin; approved by bob.
  Response early = c.Do(http::verb::post, path + "/apply", alice);
  CHECK(early.status == 409);
  CHECK(ErrorCode(early) == "FAILED_PRECONDITION");
  Response self = c.Do(http::verb::post, path + "/approve", alice_approver, R"({"reason": "ok"})");
  CHECK(self.status == 403);
  CHECK(ErrorCode(self) == "PERMISSION_DENIED");
  CHECK(self.body.find("someone else") != std::string::npos);
  Response by_admin = c.Do(http::verb::post, path + "/approve", h.admin);
  CHECK(by_admin.status == 403);
  CHECK(ErrorCode(by_admin) == "PERMISSION_DENIED");
  Response approved =
      c.Do(http::verb::post, path + "/approve", bob,
           R"({"reason": "looks right", "changeId": ")" + std::to_string(change.id()) + R"("})");
  REQUIRE_MESSAGE(approved.status == 200, approved.body);
  auto decided = Parse<v1::PolicyChange>(approved);
  CHECK(decided.state() == v1::APPROVED);
  CHECK(decided.decided_by() == "token:bob (approver)");
  CHECK(decided.decision_reason() == "looks right");
  CHECK(c.Do(http::verb::post, path + "/approve", bob).status == 409);  // approved already

  // Applied: version 2, and the compliant device fails at once.
  Response applied = c.Do(http::verb::post, path + "/apply", alice);
  REQUIRE_MESSAGE(applied.status == 200, applied.body);
  auto done = Parse<v1::PolicyChange>(applied);
  CHECK(done.state() == v1::APPLIED);
  CHECK(done.version() == 2);
  CHECK(done.applied_by() == "token:alice (admin)");
  CHECK(done.devices_changed() == 1);
  CHECK(status_of(h.compliant_id) == v1::NON_COMPLIANT);
  CHECK(Parse<v1::ListDevicesResponse>(c.Get("/api/v1/devices?status=NON_COMPLIANT", h.viewer))
            .devices_size() == 2);
  CHECK(Parse<v1::PolicyVersionInfo>(c.Get("/api/v1/policy", h.viewer)).version() == 2);
  CHECK(Parse<v1::DevicePolicyResponse>(
            c.Get("/api/v1/devices/" + h.compliant_id + "/policy", h.viewer))
            .policy()
            .screen_lock()
            .max_idle_seconds() == 300);

  // The review: one COMPLIANT device before the apply, none after.
  Response review = c.Get(path + "/review", h.approver);
  REQUIRE_MESSAGE(review.status == 200, review.body);
  auto reviewed = Parse<v1::PolicyReview>(review);
  CHECK(reviewed.change().id() == change.id());
  CHECK(reviewed.current_version() == 2);
  CHECK(reviewed.before().total() == 2);
  CHECK(CountOf(reviewed.before().by_status(), v1::COMPLIANT) == 1);
  CHECK(CountOf(reviewed.after().by_status(), v1::COMPLIANT) == 0);
  CHECK(CountOf(reviewed.now().by_status(), v1::NON_COMPLIANT) == 2);

  // The diff between the versions; `to` defaults to the current one.
  Response diff = c.Get("/api/v1/policy/diff?from=1&to=2", h.viewer);
  REQUIRE_MESSAGE(diff.status == 200, diff.body);
  auto lines = Parse<v1::DiffPolicyVersionsResponse>(diff);
  REQUIRE(lines.lines_size() > 0);
  bool mentions = false;
  for (const auto& line : lines.lines())
    mentions = mentions || line.find("screen") != std::string::npos;
  CHECK(mentions);
  CHECK(Parse<v1::DiffPolicyVersionsResponse>(c.Get("/api/v1/policy/diff?from=1", h.viewer))
            .lines_size() == lines.lines_size());
  CHECK(Parse<v1::DiffPolicyVersionsResponse>(c.Get("/api/v1/policy/diff?from=2&to=2", h.viewer))
            .lines_size() == 0);

  // Rolled back to version 1 (version 3): the device is COMPLIANT again.
  CHECK(c.Do(http::verb::post, "/api/v1/policy/rollback", alice, R"({"toVersion": 1})").status ==
        400);  // a reason is required
  Response rolled = c.Do(http::verb::post, "/api/v1/policy/rollback", alice,
                         R"({"toVersion": "1", "reason": "too strict for the kiosks"})");
  REQUIRE_MESSAGE(rolled.status == 200, rolled.body);
  auto rollback = Parse<v1::PolicyChange>(rolled);
  CHECK(rollback.kind() == v1::ROLLBACK);
  CHECK(rollback.state() == v1::APPLIED);
  CHECK(rollback.rollback_to() == 1);
  CHECK(rollback.version() == 3);
  CHECK(status_of(h.compliant_id) == v1::COMPLIANT);
  CHECK(Parse<v1::ListPolicyChangesResponse>(c.Get("/api/v1/policy/changes", h.viewer))
            .current_version() == 3);
  Response again = c.Do(http::verb::post, "/api/v1/policy/rollback", alice,
                        R"({"toVersion": 3, "reason": "x"})");
  CHECK(again.status == 409);  // already in force
  CHECK(
      c.Do(http::verb::post, "/api/v1/policy/rollback", alice, R"({"toVersion": 9, "reason": "x"})")
          .status == 404);

  // The record: who did what, the refused self-approval included.
  auto audit = Parse<v1::ListAuditResponse>(c.Get("/api/v1/audit?limit=1000", h.admin));
  bool refused = false, approved_by_bob = false, applied_by_alice = false, rolled_back = false;
  for (const auto& e : audit.entries()) {
    refused = refused || (e.action() == "policy.approve" && !e.success() &&
                          e.actor() == "token:alice+approver (approver)");
    approved_by_bob = approved_by_bob || (e.action() == "policy.approve" && e.success() &&
                                          e.actor() == "token:bob (approver)");
    applied_by_alice =
        applied_by_alice || (e.action() == "policy.apply" && e.actor() == "token:alice (admin)");
    rolled_back = rolled_back || (e.action() == "policy.rollback" &&
                                  e.detail().find("too strict") != std::string::npos);
  }
  CHECK(refused);
  CHECK(approved_by_bob);
  CHECK(applied_by_alice);
  CHECK(rolled_back);

  // A rejected change cannot be applied.
  auto second =
      Parse<v1::PolicyChange>(c.Do(http::verb::post, "/api/v1/policy/changes", alice, kProposal));
  const std::string second_path = "/api/v1/policy/changes/" + std::to_string(second.id());
  CHECK(c.Do(http::verb::post, second_path + "/reject", bob, "{}").status == 400);  // no reason
  Response rejected =
      c.Do(http::verb::post, second_path + "/reject", h.admin, R"({"reason": "not now"})");
  REQUIRE_MESSAGE(rejected.status == 200, rejected.body);
  CHECK(Parse<v1::PolicyChange>(rejected).state() == v1::REJECTED);
  CHECK(c.Do(http::verb::post, second_path + "/apply", alice).status == 409);
  CHECK(c.Get(second_path + "/review", h.admin).status == 409);  // only APPLIED ones
}

TEST_CASE("HTTPS API: policy and exception routes refuse the wrong role with 403, audited") {
  Harness h;
  Client c = h.NewClient();
  struct Case {
    http::verb verb;
    std::string target;
    std::string token;
    std::string method;  // FleetService's, in the audit record
  };
  const std::vector<Case> cases = {
      {http::verb::post, "/api/v1/policy/changes", h.viewer, "ProposePolicyChange"},
      {http::verb::post, "/api/v1/policy/changes", h.approver, "ProposePolicyChange"},
      {http::verb::post, "/api/v1/policy/changes/1/approve", h.admin, "ApprovePolicyChange"},
      {http::verb::post, "/api/v1/policy/changes/1/approve", h.viewer, "ApprovePolicyChange"},
      {http::verb::post, "/api/v1/policy/changes/1/reject", h.viewer, "RejectPolicyChange"},
      {http::verb::post, "/api/v1/policy/changes/1/apply", h.approver, "ApplyPolicyChange"},
      {http::verb::post, "/api/v1/policy/rollback", h.approver, "RollbackPolicy"},
      {http::verb::post, "/api/v1/exceptions", h.viewer, "RequestException"},
      {http::verb::post, "/api/v1/exceptions", h.approver, "RequestException"},
      {http::verb::post, "/api/v1/exceptions/1/approve", h.admin, "ApproveException"},
      {http::verb::post, "/api/v1/exceptions/1/reject", h.viewer, "RejectException"},
      {http::verb::post, "/api/v1/exceptions/1/revoke", h.viewer, "RevokeException"},
      {http::verb::get, "/api/v1/policy/changes/1/preview", h.viewer, "PreviewPolicyChange"},
      {http::verb::get, "/api/v1/policy/changes/1/review", h.viewer, "ReviewPolicyChange"},
  };
  for (const auto& k : cases) {
    CAPTURE(k.target);
    CAPTURE(k.method);
    // Each refusal spends the address's budget of failed authentications (10 a minute, one
    // back every 6 s): keep within it.
    h.clock.Advance(6000);
    Response r = c.Do(k.verb, k.target, k.token, R"({"reason": "x"})");
    CHECK(r.status == 403);
    CHECK(ErrorCode(r) == "PERMISSION_DENIED");
    CHECK(r.body.find(k.method) != std::string::npos);
  }
  CHECK(h.counters.Get("auth.rejected.forbidden") == cases.size());
  // Reading is every role's, but for the scans (preview, review).
  for (const char* target : {"/api/v1/policy", "/api/v1/policy/changes", "/api/v1/policy/changes/1",
                             "/api/v1/policy/diff?from=1", "/api/v1/exceptions"}) {
    CAPTURE(target);
    CHECK(c.Get(target, h.viewer).status == 200);
  }
  Response audit = c.Get("/api/v1/audit?limit=1000", h.approver);
  REQUIRE(audit.status == 200);
  std::set<std::string> audited;
  const auto entries = Parse<v1::ListAuditResponse>(audit);
  for (const auto& e : entries.entries()) {
    if (e.action() == "auth.failed") audited.insert(e.detail());
  }
  for (const auto& k : cases) {
    bool found = false;
    for (const auto& d : audited)
      found = found || d.find(k.method + " (HTTPS)") != std::string::npos;
    CAPTURE(k.method);
    CHECK(found);
  }
}

TEST_CASE(
    "HTTPS API: policy and exception routes: bad bodies and queries are 400 naming the "
    "field, unknown changes 404, wrong methods 405") {
  Harness h;
  h.AddDevices();
  Client c = h.NewClient();
  const std::string approver2 = h.Token("bob", Role::kApprover);

  struct Bad {
    std::string target;
    std::string body;
    std::string names;  // in the message
  };
  for (
      const Bad& b : std::vector<Bad>{
          {"/api/v1/policy/changes", "{not json", "request body"},
          {"/api/v1/policy/changes", R"({"reason": 1})", "reason"},
          {"/api/v1/policy/changes", R"({"colour": "red"})", "colour"},
          {"/api/v1/policy/changes", R"({"reason": "r", "rollbackPlan": "p"})", "policy_set"},
          {"/api/v1/policy/changes", R"({"policySet": {"defaultPolicy": {}}, "rollbackPlan": "p"})",
           "reason"},
          {"/api/v1/policy/changes", R"({"policySet": {"defaultPolicy": {}}, "reason": "r"})",
           "rollback_plan"},
          {"/api/v1/policy/changes",
           R"({"policySet": {"defaultPolicy": {"screenLock": {"maxIdleSeconds": "abc"}}}, "reason": "r", "rollbackPlan": "p"})",
           "max_idle_seconds"},
          {"/api/v1/policy/changes",
           R"({"policySet": {"defaultPolicy": {"usbStorage": {"mode": "SOMETIMES"}}}, "reason": "r", "rollbackPlan": "p"})",
           "mode"},
          {"/api/v1/policy/rollback", R"({"toVersion": "x", "reason": "r"})", "to_version"},
          {"/api/v1/policy/rollback", R"({"reason": "r"})", "to_version"},
          {"/api/v1/policy/changes/1/apply", R"({"changeId": "2"})", "changeId"},
          {"/api/v1/policy/changes/1/apply", R"({"deviceLimit": 5})", "deviceLimit"},
          {"/api/v1/policy/changes/1/reject", R"({"reason": ""})", "reason"},
          {"/api/v1/policy/changes/1/reject", R"({"why": "no"})", "why"},
          {"/api/v1/exceptions",
           R"({"deviceId": "DEV", "check": "usb_storage", "reason": "r", "expiresAt": "tomorrow"})",
           "expires"},
          {"/api/v1/exceptions", R"({"deviceId": "DEV", "check": "usb_storage", "reason": "r"})",
           "expires_at"},
          {"/api/v1/exceptions",
           R"({"deviceId": "DEV", "check": "firewall", "reason": "r", "expiresAt": "2027-01-22T08:00:00Z"})",
           "check"},
          {"/api/v1/exceptions",
           R"({"deviceId": "DEV", "tag": "lab", "check": "usb_storage", "reason": "r", "expiresAt": "2027-01-22T08:00:00Z"})",
           "device_id and tag"},
          {"/api/v1/exceptions",
           R"({"tag": "lab", "check": "usb_storage", "reason": "r", "expiresAt": "2020-01-01T00:00:00Z"})",
           "expires_at"},
          {"/api/v1/exceptions/1/revoke", "{}", "reason"},
          {"/api/v1/exceptions/1/approve", R"({"exceptionId": "3"})", "exceptionId"},
      }) {
    std::string body = b.body;
    if (size_t at = body.find("DEV"); at != std::string::npos) body.replace(at, 3, h.failing_id);
    CAPTURE(b.target);
    CAPTURE(body);
    const bool approve = b.target.find("/approve") != std::string::npos;
    Response r = c.Do(http::verb::post, b.target, approve ? approver2 : h.admin, body);
    CHECK(r.status == 400);
    CHECK(ErrorCode(r) == "INVALID_ARGUMENT");
    CHECK(r.body.find(b.names) != std::string::npos);
  }

  for (const char* target : {
           "/api/v1/policy?version=abc",
           "/api/v1/policy?v=1",
           "/api/v1/policy/changes?afterId=x",
           "/api/v1/policy/changes?after_id=1",  // proto names are not the API's
           "/api/v1/policy/changes/1?deviceLimit=3",
           "/api/v1/policy/changes/1/preview?deviceLimit=-1",
           "/api/v1/policy/changes/1/review?x=1",
           "/api/v1/policy/changes/abc",
           "/api/v1/policy/changes/0",
           "/api/v1/policy/changes/-1/preview",
           "/api/v1/policy/changes/99999999999999999999",
           "/api/v1/policy/diff",
           "/api/v1/policy/diff?to=2",
           "/api/v1/policy/diff?from=x",
           "/api/v1/policy/diff?fromVersion=1",
           "/api/v1/policy/diff?from=1&from=2",
           "/api/v1/exceptions?state=ACTIVE",
           "/api/v1/exceptions?device_id=x",
           "/api/v1/devices/a%0Ab/policy",
           "/api/v1/devices/x/policy?y=1",
       }) {
    CAPTURE(target);
    Response r = c.Get(target, h.admin);
    CHECK(r.status == 400);
    CHECK(ErrorCode(r) == "INVALID_ARGUMENT");
  }
  CHECK(c.Get("/api/v1/policy/diff?from=x", h.admin).body.find("'from'") != std::string::npos);
  CHECK(c.Get("/api/v1/policy/diff?to=2", h.admin).body.find("'from'") != std::string::npos);
  CHECK(
      c.Do(http::verb::post, "/api/v1/exceptions/x/revoke", h.admin, R"({"reason": "r"})").status ==
      400);
  CHECK(c.Do(http::verb::post, "/api/v1/policy/changes?x=1", h.admin, kProposal).status == 400);

  // Unknown changes, versions and exceptions: 404.
  for (const char* target : {"/api/v1/policy/changes/99", "/api/v1/policy/changes/99/preview",
                             "/api/v1/policy/changes/99/review", "/api/v1/policy?version=99",
                             "/api/v1/policy/diff?from=1&to=99", "/api/v1/policy/diff?from=99",
                             "/api/v1/exceptions?deviceId=no-such-device"}) {
    CAPTURE(target);
    Response r = c.Get(target, h.admin);
    CHECK(r.status == 404);
    CHECK(ErrorCode(r) == "NOT_FOUND");
  }
  CHECK(c.Do(http::verb::post, "/api/v1/policy/changes/99/approve", approver2).status == 404);
  CHECK(c.Do(http::verb::post, "/api/v1/policy/changes/99/reject", h.admin, R"({"reason": "r"})")
            .status == 404);
  CHECK(c.Do(http::verb::post, "/api/v1/policy/changes/99/apply", h.admin).status == 404);
  CHECK(c.Do(http::verb::post, "/api/v1/exceptions/99/approve", approver2).status == 404);
  CHECK(c.Do(http::verb::post, "/api/v1/exceptions/99/revoke", h.admin, R"({"reason": "r"})")
            .status == 404);
  Response no_change = c.Get("/api/v1/policy/changes/99", h.viewer);
  CHECK(no_change.body.find("no policy change 99") != std::string::npos);
  // Unknown paths under /policy and /exceptions.
  for (const char* target :
       {"/api/v1/policy/nothing", "/api/v1/policy/changes/1/merge", "/api/v1/policy/changes/1/a/b",
        "/api/v1/exceptions/1", "/api/v1/exceptions/1/extend", "/api/v1/policy/versions/1"}) {
    CAPTURE(target);
    CHECK(c.Get(target, h.admin).status == 404);
  }

  // Wrong methods: 405 with Allow.
  Response del = c.Do(http::verb::delete_, "/api/v1/policy/changes", h.admin);
  CHECK(del.status == 405);
  CHECK(del.Header("allow") == "GET, POST");
  CHECK(c.Do(http::verb::put, "/api/v1/exceptions", h.admin).Header("allow") == "GET, POST");
  Response get_apply = c.Get("/api/v1/policy/changes/1/apply", h.admin);
  CHECK(get_apply.status == 405);
  CHECK(get_apply.Header("allow") == "POST");
  CHECK(c.Do(http::verb::post, "/api/v1/policy", h.admin).status == 405);
  CHECK(c.Do(http::verb::post, "/api/v1/policy/changes/1/preview", h.admin).status == 405);
  CHECK(c.Get("/api/v1/policy/rollback", h.admin).status == 405);
  CHECK(c.Do(http::verb::post, "/api/v1/policy/diff?from=1", h.admin).status == 405);
  CHECK(c.Get("/api/v1/exceptions/1/revoke", h.admin).status == 405);
  CHECK(c.Do(http::verb::post, "/api/v1/devices/x/policy", h.admin).status == 405);
}

TEST_CASE("HTTPS API: an exception requested, approved by another person, listed and revoked") {
  Harness h;
  h.AddDevices();
  const std::string alice = h.Token("alice", Role::kAdmin);
  const std::string alice_approver = h.Token("alice+approver", Role::kApprover);
  const std::string bob = h.Token("bob", Role::kApprover);
  Client c = h.NewClient();
  auto status_of = [&](const std::string& id) {
    return Parse<v1::GetDeviceResponse>(c.Get("/api/v1/devices/" + id, h.viewer)).device().status();
  };
  REQUIRE(status_of(h.failing_id) == v1::NON_COMPLIANT);  // usb_storage ERROR

  // A week from the fake clock's now (2027-01-15T08:00:00Z).
  Response requested = c.Do(http::verb::post, "/api/v1/exceptions", alice,
                            R"({"deviceId": ")" + h.failing_id +
                                R"(", "check": "usb_storage", "reason": "USB audio interface",
                                  "expiresAt": "2027-01-22T08:00:00Z"})");
  REQUIRE_MESSAGE(requested.status == 200, requested.body);
  CHECK(requested.body.find("\"state\":\"EXCEPTION_REQUESTED\"") != std::string::npos);
  auto e = Parse<v1::PolicyException>(requested);
  CHECK(e.device_id() == h.failing_id);
  CHECK(e.requested_by() == "token:alice (admin)");
  CHECK(e.expires_at().seconds() == kStart / 1000 + 7 * 86400);
  const std::string path = "/api/v1/exceptions/" + std::to_string(e.id());
  CHECK(status_of(h.failing_id) == v1::NON_COMPLIANT);  // not before it is approved

  Response self = c.Do(http::verb::post, path + "/approve", alice_approver);
  CHECK(self.status == 403);
  CHECK(ErrorCode(self) == "PERMISSION_DENIED");
  Response approved = c.Do(http::verb::post, path + "/approve", bob, R"({"reason": "fine"})");
  REQUIRE_MESSAGE(approved.status == 200, approved.body);
  auto active = Parse<v1::PolicyException>(approved);
  CHECK(active.state() == v1::EXCEPTION_ACTIVE);
  CHECK(active.decided_by() == "token:bob (approver)");
  CHECK(status_of(h.failing_id) == v1::EXCEPTED);
  auto dp = Parse<v1::DevicePolicyResponse>(
      c.Get("/api/v1/devices/" + h.failing_id + "/policy", h.viewer));
  REQUIRE(dp.exceptions_size() == 1);
  CHECK(dp.exceptions(0).id() == e.id());

  // Listed by state and by device.
  auto all = Parse<v1::ListExceptionsResponse>(c.Get("/api/v1/exceptions", h.viewer));
  REQUIRE(all.exceptions_size() == 1);
  CHECK(Parse<v1::ListExceptionsResponse>(
            c.Get("/api/v1/exceptions?state=EXCEPTION_ACTIVE", h.viewer))
            .exceptions_size() == 1);
  CHECK(Parse<v1::ListExceptionsResponse>(
            c.Get("/api/v1/exceptions?state=EXCEPTION_REQUESTED", h.viewer))
            .exceptions_size() == 0);
  CHECK(Parse<v1::ListExceptionsResponse>(
            c.Get("/api/v1/exceptions?deviceId=" + h.failing_id + "&state=", h.viewer))
            .exceptions_size() == 1);
  CHECK(Parse<v1::ListExceptionsResponse>(
            c.Get("/api/v1/exceptions?deviceId=" + h.compliant_id, h.viewer))
            .exceptions_size() == 0);

  // Revoked (a reason is required): the device fails again.
  CHECK(c.Do(http::verb::post, path + "/revoke", bob, "{}").status == 400);
  Response revoked =
      c.Do(http::verb::post, path + "/revoke", bob, R"({"reason": "the interface was replaced"})");
  REQUIRE_MESSAGE(revoked.status == 200, revoked.body);
  auto ended = Parse<v1::PolicyException>(revoked);
  CHECK(ended.state() == v1::EXCEPTION_REVOKED);
  CHECK(ended.ended_by() == "token:bob (approver)");
  CHECK(ended.end_reason() == "the interface was replaced");
  CHECK(status_of(h.failing_id) == v1::NON_COMPLIANT);
  Response twice = c.Do(http::verb::post, path + "/revoke", bob, R"({"reason": "again"})");
  CHECK(twice.status == 409);
  CHECK(ErrorCode(twice) == "FAILED_PRECONDITION");

  // A tag's exception, rejected by an admin; a rejected one cannot be approved.
  Response by_tag = c.Do(http::verb::post, "/api/v1/exceptions", alice,
                         R"({"tag": "lab", "check": "screen_lock", "reason": "kiosks",
                             "expiresAt": "2027-02-01T00:00:00Z"})");
  REQUIRE_MESSAGE(by_tag.status == 200, by_tag.body);
  auto tagged = Parse<v1::PolicyException>(by_tag);
  CHECK(tagged.tag() == "lab");
  const std::string tag_path = "/api/v1/exceptions/" + std::to_string(tagged.id());
  Response rejected = c.Do(http::verb::post, tag_path + "/reject", h.admin,
                           R"({"reason": "use the kiosk policy"})");
  REQUIRE_MESSAGE(rejected.status == 200, rejected.body);
  CHECK(Parse<v1::PolicyException>(rejected).state() == v1::EXCEPTION_REJECTED);
  CHECK(c.Do(http::verb::post, tag_path + "/approve", bob).status == 409);
  CHECK(
      Parse<v1::ListExceptionsResponse>(c.Get("/api/v1/exceptions", h.viewer)).exceptions_size() ==
      2);

  auto audit = Parse<v1::ListAuditResponse>(c.Get("/api/v1/audit?limit=1000", h.admin));
  bool requested_audit = false, refused = false, revoked_audit = false;
  for (const auto& a : audit.entries()) {
    requested_audit = requested_audit ||
                      (a.action() == "exception.request" && a.actor() == "token:alice (admin)");
    refused = refused || (a.action() == "exception.approve" && !a.success());
    revoked_audit =
        revoked_audit || (a.action() == "exception.revoke" && a.actor() == "token:bob (approver)");
  }
  CHECK(requested_audit);
  CHECK(refused);
  CHECK(revoked_audit);
}

TEST_CASE("HTTPS API: a body over 64 KiB is refused with 413 before it is read") {
  Harness h;
  Client c = h.NewClient();
  std::string big = R"({"tags": [")" + std::string(70 << 10, 'a') + R"("]})";
  Response r = c.Do(http::verb::put, "/api/v1/devices/x/tags", h.admin, big);
  CHECK(r.status == 413);
  CHECK(ErrorCode(r) == "PAYLOAD_TOO_LARGE");
  CHECK(h.counters.Get("http.rejected.too_large") == 1);

  // Chunked, without a Content-Length: refused once the limit is crossed.
  http::request<http::string_body> req{http::verb::put, "/api/v1/devices/x/tags", 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, "Bearer " + h.admin);
  req.body() = big;
  req.chunked(true);
  Response chunked = c.Send(req);
  CHECK(chunked.status == 413);
  // "Expect: 100-continue": the server says continue, then reads the body.
  {
    http::request<http::string_body> ask{http::verb::post, "/api/v1/devices/nope:revoke", 11};
    ask.set(http::field::host, "127.0.0.1");
    ask.set(http::field::authorization, "Bearer " + h.admin);
    ask.set(http::field::expect, "100-continue");
    ask.body() = R"({"reason": "lost"})";
    ask.prepare_payload();
    beast::ssl_stream<beast::tcp_stream> stream(c.io(), c.ctx());
    c.Connect(stream);
    http::request_serializer<http::string_body> sr{ask};
    http::write_header(stream, sr);
    beast::flat_buffer buffer;
    http::response<http::empty_body> go;
    http::read(stream, buffer, go);
    CHECK(go.result() == http::status::continue_);
    http::write(stream, sr);
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    CHECK(res.result_int() == 404);  // the body was read: the reason passed, the device is unknown
  }
  // Just under the limit is read (and judged by the API).
  std::string fits = R"({"tags": [")" + std::string(60 << 10, 'a') + R"("]})";
  CHECK(c.Do(http::verb::put, "/api/v1/devices/x/tags", h.admin, fits).status == 400);
}

TEST_CASE("HTTPS API: /metrics is Prometheus text with the fleet, counters and report latency") {
  Harness h;
  h.AddDevices();
  h.report_duration.Observe(0.003);
  h.report_duration.Observe(0.2);
  h.counters.Inc("alert.delivery.delivered.ops-webhook", 3);
  Client c = h.NewClient();
  Response r = c.Get("/metrics", h.viewer);
  REQUIRE(r.status == 200);
  CHECK(r.Header("content-type") == "text/plain; version=0.0.4; charset=utf-8");

  static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
  static const std::regex sample(
      R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? (-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?|[-+]Inf|NaN)$)re");
  std::istringstream lines(r.body);
  std::string line;
  int n = 0;
  std::map<std::string, std::string> values;
  while (std::getline(lines, line)) {
    ++n;
    CAPTURE(line);
    bool ok = std::regex_match(line, comment) || std::regex_match(line, sample);
    CHECK(ok);
    if (line[0] != '#') {
      size_t space = line.rfind(' ');
      values[line.substr(0, space)] = line.substr(space + 1);
    }
  }
  CHECK(n > 20);
  CHECK(r.body.back() == '\n');
  CHECK(values["vigil_devices{status=\"COMPLIANT\"}"] == "1");
  CHECK(values["vigil_devices{status=\"NON_COMPLIANT\"}"] == "1");
  CHECK(values["vigil_devices{status=\"STALE\"}"] == "0");
  CHECK(values["vigil_attestations_total{result=\"accepted\"}"] == "4");
  CHECK(values["vigil_counter_total{name=\"report.accepted\"}"] == "4");
  CHECK(values["vigil_report_duration_seconds_bucket{le=\"0.001\"}"] == "0");
  CHECK(values["vigil_report_duration_seconds_bucket{le=\"0.005\"}"] == "1");
  CHECK(values["vigil_report_duration_seconds_bucket{le=\"10\"}"] == "2");
  CHECK(values["vigil_report_duration_seconds_bucket{le=\"+Inf\"}"] == "2");
  CHECK(values["vigil_report_duration_seconds_count"] == "2");
  CHECK(values["vigil_alert_deliveries_total{sink=\"ops-webhook\",result=\"delivered\"}"] == "3");
  CHECK(r.body.find("# TYPE vigil_report_duration_seconds histogram\n") != std::string::npos);
  CHECK(r.body.find("# TYPE vigil_alert_outbox_depth gauge\n") != std::string::npos);
}

TEST_CASE("HTTPS API: the dashboard's files with their types, CSP and revalidation") {
  Harness h;
  Client c = h.NewClient();
  Response index = c.Get("/");
  REQUIRE(index.status == 200);  // the page itself needs no token; its data does
  CHECK(index.Header("content-type") == "text/html; charset=utf-8");
  CHECK(index.body.find("id=\"status-filter\"") != std::string::npos);
  CHECK(index.Header("content-security-policy").find("default-src 'self'") == 0);
  CHECK(index.Header("content-security-policy").find("frame-ancestors 'none'") !=
        std::string::npos);
  CHECK(index.Header("x-content-type-options") == "nosniff");
  CHECK(index.Header("cache-control") == "no-cache");
  CHECK(c.Get("/index.html").body == index.body);
  Response js = c.Get("/app.js");
  CHECK(js.Header("content-type") == "text/javascript; charset=utf-8");
  CHECK(js.body.find("sessionStorage") != std::string::npos);
  CHECK(js.body.find("innerHTML") == std::string::npos);
  Response css = c.Get("/style.css");
  CHECK(css.Header("content-type") == "text/css; charset=utf-8");
  REQUIRE(!css.Header("etag").empty());
  Response again =
      c.Do(http::verb::get, "/style.css", "", "", {{"If-None-Match", css.Header("etag")}});
  CHECK(again.status == 304);
  CHECK(again.body.empty());
}

TEST_CASE("HTTPS API: TLS 1.3 only; keep-alive serves several requests on one connection") {
  Harness h;
  {
    // A TLS 1.2 client gets no session.
    Client old(h.tls.ca.cert_pem, h.server->port());
    SSL_CTX_set_max_proto_version(old.ctx().native_handle(), TLS1_2_VERSION);
    beast::ssl_stream<beast::tcp_stream> stream(old.io(), old.ctx());
    CHECK_THROWS(old.Connect(stream));
  }
  {
    // A client that does not trust the server's CA refuses it.
    auto other = pki::CreateCa("another CA", kStart / 1000, 10);
    REQUIRE(other.ok());
    Client stranger(other->cert_pem, h.server->port());
    beast::ssl_stream<beast::tcp_stream> stream(stranger.io(), stranger.ctx());
    CHECK_THROWS(stranger.Connect(stream));
  }
  Client c = h.NewClient();
  beast::ssl_stream<beast::tcp_stream> kept(c.io(), c.ctx());
  c.Connect(kept);
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req{http::verb::get, "/api/v1/summary", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + h.viewer);
    http::write(kept, req);
    beast::flat_buffer buf;
    http::response<http::string_body> resp;
    http::read(kept, buf, resp);
    CHECK(resp.result_int() == 200);
    CHECK(resp.keep_alive());
  }
  h.server->Stop();
  h.server->Stop();  // idempotent
}

TEST_CASE("HTTPS API: a silent connection is closed; connections beyond the limit are refused") {
  HttpServerOptions options;
  options.header_timeout = std::chrono::milliseconds(1000);
  options.max_connections = 2;
  Harness h(options);
  Client c = h.NewClient();

  // A connection that never sends a request is closed after the header timeout.
  {
    beast::ssl_stream<beast::tcp_stream> idle(c.io(), c.ctx());
    c.Connect(idle);
    auto start = std::chrono::steady_clock::now();
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(idle, buffer, res, ec);
    CHECK(ec);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
  }

  // Two open connections fill the server (a closed one may take a moment to be let go); a third
  // is closed at once; once they go, requests are served again.
  using Stream = beast::ssl_stream<beast::tcp_stream>;
  auto connect_retrying = [&]() -> std::unique_ptr<Stream> {
    for (int i = 0; i < 100; ++i) {
      auto stream = std::make_unique<Stream>(c.io(), c.ctx());
      try {
        c.Connect(*stream);
        return stream;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    return nullptr;
  };
  auto a = connect_retrying();
  auto b = connect_retrying();
  REQUIRE(a);
  REQUIRE(b);
  beast::ssl_stream<beast::tcp_stream> third(c.io(), c.ctx());
  CHECK_THROWS(c.Connect(third));
  CHECK(h.counters.Get("http.rejected.connections") >= 1);
  a.reset();
  b.reset();
  Response ok;
  for (int i = 0; i < 100 && ok.status != 200; ++i) {
    try {
      ok = c.Get("/api/v1/summary", h.viewer);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  CHECK(ok.status == 200);
}

TEST_CASE("Histogram: cumulative buckets, +Inf, count and sum") {
  Histogram hist({0.01, 0.1, 1});
  for (double v : {0.005, 0.01, 0.05, 0.5, 2.0, -1.0}) hist.Observe(v);
  auto s = hist.Read();
  REQUIRE(s.cumulative.size() == 4);
  CHECK(s.cumulative[0] == 3);  // -1 (as 0), 0.005, 0.01 (le is inclusive)
  CHECK(s.cumulative[1] == 4);
  CHECK(s.cumulative[2] == 5);
  CHECK(s.cumulative[3] == 6);
  CHECK(s.count == 6);
  CHECK(s.sum == doctest::Approx(2.565));
  MetricsText text;
  text.HistogramFamily("x_seconds", "help", s);
  CHECK(text.text().find("x_seconds_bucket{le=\"0.01\"} 3\n") != std::string::npos);
  CHECK(text.text().find("x_seconds_bucket{le=\"+Inf\"} 6\n") != std::string::npos);
  CHECK(text.text().find("x_seconds_count 6\n") != std::string::npos);
}

TEST_CASE("Histogram: concurrent observations are all counted") {
  Histogram hist(Histogram::LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&hist, t] {
      for (int i = 0; i < 10000; ++i) hist.Observe(0.001 * ((i + t) % 20));
    });
  }
  std::thread reader([&hist] {
    for (int i = 0; i < 100; ++i) {
      auto s = hist.Read();
      CHECK(s.cumulative.back() == s.count);
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  CHECK(hist.Read().count == 40000);
}

TEST_CASE("MetricsText: label values are escaped") {
  MetricsText text;
  text.Family("m", "gauge", "a\nb");
  text.Sample("m", {{"name", "a\"b\\c\nd"}}, uint64_t{1});
  CHECK(text.text() == "# HELP m a\\nb\n# TYPE m gauge\nm{name=\"a\\\"b\\\\c\\nd\"} 1\n");
  CHECK(FormatMetricValue(0.25) == "0.25");
  CHECK(FormatMetricValue(3) == "3");
}

}  // namespace
}  // namespace vigil::server

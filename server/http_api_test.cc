// The HTTPS API (http_api.h) over real TLS on 127.0.0.1 with a Boost.Beast client that trusts
// only the test's CA: tokens and roles, each route's JSON, malformed input, limits, /metrics
// and the dashboard's files. The metrics' Histogram and text format are tested on their own.
#include "server/http_api.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "collectors/collectors.h"
#include "proto/json.h"
#include "proto/pki.h"
#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/metrics.h"
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

std::string TempDir() {
  char tmpl[] = "/tmp/vigil-http-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

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
  std::string dir = TempDir();
  FakeClock clock{kStart};
  Counters counters;
  Histogram report_duration{Histogram::LatencyBuckets()};
  v1::Policy policy;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  std::unique_ptr<HttpApi> api;
  std::unique_ptr<HttpServer> server;
  TlsMaterial tls;
  std::string viewer, admin, approver;
  std::string compliant_id, failing_id;

  explicit Harness(HttpServerOptions options = {}) {
    auto s = OpenSqliteStore(dir + "/vigil.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    policy.set_checkin_window_seconds(3600);
    AggregatorOptions opts;
    opts.reports_per_minute = 0;
    aggregator = std::make_unique<Aggregator>(*store, clock, *credentials, counters, policy, opts);
    fleet = std::make_unique<Fleet>(*store, clock, aggregator->policy(), counters);
    auto t = CreateTlsMaterial(dir, {"127.0.0.1", "localhost"},
                               std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
    REQUIRE(t.ok());
    tls = *t;
    viewer = Token("viewer", Role::kViewer);
    admin = Token("admin", Role::kAdmin);
    approver = Token("approver", Role::kApprover);
    api = std::make_unique<HttpApi>(*fleet, *credentials, *aggregator, counters, report_duration);
    options.listen = "127.0.0.1:0";
    auto started = HttpServer::Start(options, tls.server, *api, counters);
    REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    server = std::move(started).value();
  }

  ~Harness() {
    server.reset();  // stops serving before what it uses goes
    api.reset();
    fleet.reset();
    aggregator.reset();
    credentials.reset();
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
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

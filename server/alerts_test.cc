// The alert dispatcher: order, retries with backoff, refusals, leases across replicas, and the
// time-driven alerts, on a real SQLite store with scripted sinks and a fake clock. The real
// sinks over real sockets are in alert_sinks_test.cc; a real server, agent and receiver in
// tests/e2e/alerts_test.sh.
#include "server/alerts.h"

#include <doctest/doctest.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <mutex>
#include <thread>

#include "common/files.h"
#include "common/temp_dir.h"
#include "proto/json.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;

// A sink that answers from a script (then kDelivered) and records every attempt.
class ScriptedSink final : public AlertSink {
 public:
  explicit ScriptedSink(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  std::string type() const override { return "webhook"; }
  Delivery Send(const v1::Alert& alert) override {
    attempts.push_back(alert);
    if (script.empty()) {
      received.push_back(alert);
      return {DeliveryOutcome::kDelivered, ""};
    }
    Delivery d = script.front();
    script.pop_front();
    if (d.outcome == DeliveryOutcome::kDelivered) received.push_back(alert);
    return d;
  }
  std::deque<Delivery> script;
  std::vector<v1::Alert> attempts;
  std::vector<v1::Alert> received;

 private:
  std::string name_;
};

AuditRecord Audit() { return {kNow, "test", "x", "t", "", true}; }

// Flips device `id` to NON_COMPLIANT and back `times` times: 2*times alerts.
void Flip(Store& store, const std::string& id, int times, uint64_t* seq) {
  auto d = store.GetDevice(id).value().value();
  for (int i = 0; i < 2 * times; ++i) {
    AcceptedAttestation a;
    a.device_id = id;
    a.sequence = ++*seq;
    a.digest = std::string(32, 'd');
    a.issued_at_ms = a.received_at_ms = kNow;
    a.envelope.set_attestation("x");
    d.last_seen_ms = kNow;
    d.last_sequence = a.sequence;
    d.status = i % 2 == 0 ? v1::NON_COMPLIANT : v1::COMPLIANT;
    d.failing_checks =
        i % 2 == 0 ? std::vector<std::string>{"usb_storage"} : std::vector<std::string>{};
    a.device_after = d;
    REQUIRE(store.CommitAttestation(a).ok());
  }
}

void Enroll(Store& store, const std::string& id, char key) {
  DeviceRecord d;
  d.id = id;
  d.public_key = std::string(32, key);
  d.key_id = std::string(32, key);
  d.hostname = "host-" + id;
  d.enrolled_at_ms = kNow;
  d.status = v1::UNKNOWN;
  REQUIRE(store.InsertDevice(d, Audit()).ok());
}

struct Rig {
  TempDir dir{"vigil-alerts"};  // first, so it outlives the store
  std::string path = dir / "vigil.db";
  std::unique_ptr<Store> store = OpenSqliteStore(path).value();
  FakeClock clock{kNow};
  Counters counters;
  ScriptedSink* sink = nullptr;
  std::unique_ptr<AlertDispatcher> dispatcher;

  explicit Rig(const std::string& owner = "replica-a", Store* on = nullptr) {
    auto s = std::make_unique<ScriptedSink>("hook");
    sink = s.get();
    std::vector<std::unique_ptr<AlertSink>> sinks;
    sinks.push_back(std::move(s));
    AlertOptions o;
    o.owner = owner;
    o.retry_max_ms = 60'000;
    o.lease_ms = 10'000;
    o.enroll_failure_threshold = 3;
    dispatcher =
        std::make_unique<AlertDispatcher>(on ? *on : *store, clock, counters, std::move(sinks), o);
  }
};

TEST_CASE("alerts: delivered in id order with idempotency keys; a new sink skips the past") {
  Rig rig;
  Enroll(*rig.store, "dev-a", 'a');
  Enroll(*rig.store, "dev-b", 'b');
  uint64_t seq_a = 0, seq_b = 0;
  Flip(*rig.store, "dev-a", 1, &seq_a);        // alerts 1, 2: before the sink existed
  CHECK(rig.dispatcher->DeliverOnce(0) == 0);  // first sight: starts after them
  Flip(*rig.store, "dev-a", 1, &seq_a);        // 3, 4
  Flip(*rig.store, "dev-b", 1, &seq_b);        // 5, 6
  CHECK(rig.dispatcher->DeliverOnce(0) == 4);
  REQUIRE(rig.sink->received.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(rig.sink->received[i].id() == 3 + i);
    CHECK(rig.sink->received[i].idempotency_key() ==
          "vigil-alert-" + rig.store->InstanceId().value() + "-" + std::to_string(3 + i));
  }
  CHECK(rig.sink->received[0].kind() == "device.non_compliant");
  CHECK(rig.sink->received[0].failing_checks(0) == "usb_storage");
  CHECK(rig.sink->received[1].kind() == "device.resolved");
  CHECK(rig.counters.Get("alert.delivery.delivered.hook") == 4);
  CHECK(rig.dispatcher->DeliverOnce(0) == 0);  // nothing new, nothing twice
  CHECK(rig.sink->attempts.size() == 4);
}

TEST_CASE("alerts: a receiver that is down gets every alert, in order, once, when it returns") {
  Rig rig;
  Enroll(*rig.store, "dev-a", 'a');
  uint64_t seq = 0;
  rig.dispatcher->DeliverOnce(0);      // the sink starts here
  Flip(*rig.store, "dev-a", 3, &seq);  // six alerts
  // Down for an hour: every attempt fails, with growing, capped waits in between.
  for (int i = 0; i < 200; ++i) rig.sink->script.push_back({DeliveryOutcome::kRetry, "refused"});
  int64_t end = kNow + 3'600'000;
  int attempts_before = 0;
  std::vector<int64_t> gaps;
  int64_t last_attempt = 0;
  while (rig.clock.NowMillis() < end) {
    rig.dispatcher->DeliverOnce(0);
    if (static_cast<int>(rig.sink->attempts.size()) != attempts_before) {
      attempts_before = static_cast<int>(rig.sink->attempts.size());
      if (last_attempt) gaps.push_back(rig.clock.NowMillis() - last_attempt);
      last_attempt = rig.clock.NowMillis();
    }
    rig.clock.Advance(1000);
  }
  CHECK(rig.sink->received.empty());
  REQUIRE(gaps.size() > 10);
  CHECK(gaps[0] <= 2000);
  CHECK(gaps.back() >= 30'000);  // capped at 60 s, at least half of it
  CHECK(gaps.back() <= 61'000);
  for (const auto& a : rig.sink->attempts) CHECK(a.id() == rig.sink->attempts[0].id());
  auto sinks = rig.store->ListSinks().value();
  CHECK(sinks[0].last_error == "refused");
  CHECK(sinks[0].attempts == rig.sink->attempts.size());
  // Back up: everything arrives once, in order.
  rig.sink->script.clear();
  rig.clock.Advance(61'000);
  CHECK(rig.dispatcher->DeliverOnce(0) == 6);
  REQUIRE(rig.sink->received.size() == 6);
  for (size_t i = 1; i < 6; ++i)
    CHECK(rig.sink->received[i].id() == rig.sink->received[0].id() + i);
  CHECK(rig.store->ListSinks().value()[0].attempts == 0);
  CHECK(rig.store->ListSinks().value()[0].last_error.empty());
}

TEST_CASE("alerts: an alert the receiver refuses for good is counted and skipped") {
  Rig rig;
  Enroll(*rig.store, "dev-a", 'a');
  uint64_t seq = 0;
  rig.dispatcher->DeliverOnce(0);
  Flip(*rig.store, "dev-a", 1, &seq);
  rig.sink->script.push_back({DeliveryOutcome::kRejected, "HTTP 400"});
  CHECK(rig.dispatcher->DeliverOnce(0) == 2);
  REQUIRE(rig.sink->received.size() == 1);
  CHECK(rig.sink->received[0].kind() == "device.resolved");
  auto sink = rig.store->ListSinks().value()[0];
  CHECK(sink.failed == 1);
  CHECK(sink.last_error.find("HTTP 400") != std::string::npos);
  CHECK(rig.counters.Get("alert.delivery.failed.hook") == 1);
}

TEST_CASE("alerts: two replicas: one delivers; the other takes over when its lease runs out") {
  Rig a("replica-a");
  auto replica_store = OpenSqliteStore(a.path).value();
  Rig b("replica-b", replica_store.get());
  Enroll(*a.store, "dev-a", 'a');
  uint64_t seq = 0;
  CHECK(a.dispatcher->DeliverOnce(0) == 0);  // a holds the lease
  Flip(*a.store, "dev-a", 1, &seq);
  b.clock.Set(a.clock.NowMillis());
  CHECK(b.dispatcher->DeliverOnce(0) == 0);  // b may not
  CHECK(a.dispatcher->DeliverOnce(0) == 2);
  Flip(*a.store, "dev-a", 1, &seq);
  // a dies; after its lease b delivers the rest, and nothing twice.
  b.clock.Advance(10'001);
  CHECK(b.dispatcher->DeliverOnce(0) == 2);
  CHECK(a.sink->received.size() == 2);
  CHECK(b.sink->received.size() == 2);
  CHECK(b.sink->received[0].id() == a.sink->received[1].id() + 1);
}

TEST_CASE("alerts: stale devices and enrollment failure bursts are raised once per period") {
  Rig rig;
  Enroll(*rig.store, "dev-a", 'a');
  uint64_t seq = 0;
  Flip(*rig.store, "dev-a", 1, &seq);  // reported at kNow
  rig.clock.Advance(3'600'000 + 1);    // the default check-in window has passed
  CHECK(rig.dispatcher->RaiseDue() == 1);
  CHECK(rig.dispatcher->RaiseDue() == 0);  // claimed for this period
  rig.clock.Advance(60'000);
  CHECK(rig.dispatcher->RaiseDue() == 0);  // announced already
  auto alerts = rig.store->ListAlerts(0, 100, "").value();
  CHECK(alerts.back().kind == "device.stale");

  AuditRecord failed{rig.clock.NowMillis(),        "peer:ipv4:127.0.0.1:9", "auth.failed",
                     "enroll.rejected.bad_secret", "host 'x': invalid",     false};
  for (int i = 0; i < 3; ++i) REQUIRE(rig.store->AppendAudit(failed).ok());
  rig.clock.Advance(300'001);              // the enrollment window's claim is due again
  CHECK(rig.dispatcher->RaiseDue() == 0);  // the failures are older than the window now
  for (int i = 0; i < 3; ++i) {
    failed.at_ms = rig.clock.NowMillis();
    REQUIRE(rig.store->AppendAudit(failed).ok());
  }
  rig.clock.Advance(300'000);
  CHECK(rig.dispatcher->RaiseDue() == 1);
  alerts = rig.store->ListAlerts(0, 100, "").value();
  CHECK(alerts.back().kind == "enrollment.failures");
  CHECK(alerts.back().reason.find("3 failed enrollments") == 0);
}

// A webhook receiver on 127.0.0.1:port answering 200 to every POST, recording each request's
// signature header and body. Stopping closes the port (the receiver is "down").
class Receiver {
 public:
  explicit Receiver(uint16_t port) {
    namespace asio = boost::asio;
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), port});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] {
      namespace http = boost::beast::http;
      for (;;) {
        boost::system::error_code ec;
        asio::ip::tcp::socket sock(io_);
        acceptor_.accept(sock, ec);
        if (ec) return;  // closed by Stop
        boost::beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::read(sock, buf, req, ec);
        if (ec) continue;
        {
          std::lock_guard<std::mutex> lock(mu_);
          got_.push_back({std::string(req["X-Vigil-Signature"]), req.body()});
        }
        http::response<http::string_body> resp{http::status::ok, 11};
        resp.body() = "ok";
        resp.prepare_payload();
        http::write(sock, resp, ec);
      }
    });
  }
  ~Receiver() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    boost::system::error_code ec;
    acceptor_.cancel(ec);
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    acceptor_.close(ec);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::vector<std::pair<std::string, std::string>> got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> got_;
};

TEST_CASE(
    "alerts: a real webhook receiver gets signed alerts; down, they queue; back, all arrive once") {
  TempDir dir("vigil-alerts");
  std::string path = dir / "vigil.db";
  auto store = OpenSqliteStore(path).value();
  FakeClock clock{kNow};
  Counters counters;
  uint16_t port = 0;
  { port = Receiver(0).port(); }  // a free port, closed again: the receiver is down
  REQUIRE(WriteFileAtomic(dir / "hook.secret", "s3cret-hmac-key\n", 0600).ok());
  v1::AlertSink config;
  REQUIRE(ParseJsonStrict(R"({"name": "soc", "webhook": {"url": "http://127.0.0.1:)" +
                              std::to_string(port) + R"(/vigil", "secretFile": ")" + dir.path() +
                              R"(/hook.secret", "timeoutSeconds": 2}})",
                          &config, "test")
              .ok());
  auto sink = MakeAlertSink(config, clock);
  REQUIRE_MESSAGE(sink.ok(), sink.status().ToString());
  std::vector<std::unique_ptr<AlertSink>> sinks;
  sinks.push_back(std::move(sink).value());
  AlertOptions o;
  o.owner = "replica-a";
  o.retry_max_ms = 10'000;
  AlertDispatcher dispatcher(*store, clock, counters, std::move(sinks), o);
  Enroll(*store, "dev-a", 'a');
  dispatcher.DeliverOnce(0);  // the sink starts here
  uint64_t seq = 0;
  Flip(*store, "dev-a", 3, &seq);  // NON_COMPLIANT, resolved, x3
  for (int i = 0; i < 5; ++i) {
    CHECK(dispatcher.DeliverOnce(0) == 0);  // connection refused: kept, retried later
    clock.Advance(10'000);
  }
  auto state = store->ListSinks().value();
  CHECK(state[0].attempts == 5);
  CHECK(state[0].last_error.find("s3cret") == std::string::npos);
  Receiver receiver(port);  // back up
  clock.Advance(10'000);
  CHECK(dispatcher.DeliverOnce(0) == 6);
  CHECK(dispatcher.DeliverOnce(0) == 0);
  auto got = receiver.got();
  REQUIRE(got.size() == 6);
  uint64_t first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const auto& [signature, body] = got[i];
    // t=<seconds>,v1=<hex HMAC-SHA256 over "<seconds>." + body>
    REQUIRE(signature.rfind("t=", 0) == 0);
    int64_t t = std::stoll(signature.substr(2, signature.find(',') - 2));
    CHECK(t == clock.NowMillis() / 1000);
    CHECK(signature == WebhookSignature("s3cret-hmac-key", t, body));
    CHECK(signature != WebhookSignature("other-key", t, body));
    v1::Alert alert;
    REQUIRE(ParseJsonStrict(body, &alert, "webhook body").ok());
    if (i == 0) first = alert.id();
    CHECK(alert.id() == first + i);  // in order, none lost, none twice
    CHECK(alert.idempotency_key() ==
          "vigil-alert-" + store->InstanceId().value() + "-" + std::to_string(alert.id()));
    CHECK(alert.device_id() == "dev-a");
    CHECK(alert.kind() == (i % 2 == 0 ? "device.non_compliant" : "device.resolved"));
    if (i % 2 == 0) CHECK(alert.failing_checks(0) == "usb_storage");
  }
  CHECK(counters.Get("alert.delivery.delivered.soc") == 6);
  CHECK(counters.Get("alert.delivery.retried.soc") == 5);
}

TEST_CASE("alerts: backoff grows from 1 s, is capped, and keeps at least half") {
  std::mt19937_64 rng(7);
  for (uint32_t n = 1; n < 40; ++n) {
    int64_t full = std::min<int64_t>(300'000, int64_t{1000} << std::min<uint32_t>(n - 1, 20));
    for (int i = 0; i < 20; ++i) {
      int64_t d = AlertDispatcher::Backoff(n, 300'000, rng);
      CHECK(d >= full / 2);
      CHECK(d <= full);
    }
  }
}

}  // namespace
}  // namespace vigil::server

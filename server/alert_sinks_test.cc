// The alert sinks against real receivers on 127.0.0.1: an HTTP(S) server (Beast, in a thread)
// that records what arrived and answers with a chosen status, syslog receivers on UDP, TCP and a
// unix datagram socket, and every configuration error. Time for signatures and syslog comes from
// a FakeClock; only the timeout case waits (1 s).
#include "server/alert_sinks.h"

#include <doctest/doctest.h>
#include <google/protobuf/struct.pb.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <thread>

#include "common/files.h"
#include "common/temp_dir.h"
#include "proto/json.h"
#include "proto/pki.h"

namespace vigil::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using unix_dgram = asio::local::datagram_protocol;
using Deadline = std::chrono::steady_clock::time_point;

constexpr int64_t kNow = 1'800'000'000'123;  // 2027-01-15T08:00:00.123Z
constexpr int64_t kNowSeconds = 1'800'000'000;
constexpr const char* kSecret = "whsec_test";

std::string Hostname() {
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof(host) - 1) == 0);
  return host;
}

v1::Alert SampleAlert() {
  v1::Alert alert;
  alert.set_id(42);
  alert.set_kind("device.non_compliant");
  alert.set_device_id("dev-1");
  alert.set_hostname("web-01");
  alert.set_status(v1::NON_COMPLIANT);
  alert.set_previous_status(v1::COMPLIANT);
  alert.mutable_at()->set_seconds(kNowSeconds);
  alert.set_reason("2 checks failed");
  alert.add_failing_checks("disk_encryption");
  alert.add_failing_checks("screen_lock");
  alert.set_idempotency_key("vigil-42");
  return alert;
}

v1::AlertSink Config(const std::string& json) {
  v1::AlertSink config;
  REQUIRE(ParseJsonStrict(json, &config, "test config").ok());
  return config;
}

std::unique_ptr<AlertSink> MustMake(const std::string& json, const Clock& clock) {
  auto sink = MakeAlertSink(Config(json), clock);
  REQUIRE_MESSAGE(sink.ok(), sink.status().ToString());
  return std::move(sink).value();
}

// A webhook sink config for `url` with a secret file (written with a trailing newline, which
// the sink drops) in `dir`.
std::string WebhookJson(const TempDir& dir, const std::string& url, const std::string& extra = "") {
  REQUIRE(WriteFileAtomic(dir / "secret", std::string(kSecret) + "\n").ok());
  return R"({"name": "ops-hook", "webhook": {"url": ")" + url + R"(", "secretFile": ")" +
         dir.path() + R"(/secret")" + extra + "}}";
}

// Runs one asynchronous operation of a test receiver until it completes or `deadline` passes
// (then timed_out). After a timeout the receiver must stop: the abandoned handler still points
// here, and is destroyed, never run, with the io_context.
template <typename Start>
beast::error_code Await(asio::io_context& io, Deadline deadline, Start&& start) {
  std::optional<beast::error_code> result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  while (!result && io.run_one_until(deadline) != 0) {
  }
  return result.value_or(asio::error::timed_out);
}

Deadline InSeconds(int s) { return std::chrono::steady_clock::now() + std::chrono::seconds(s); }

struct Request {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string sni;  // the TLS server name the client sent
};

// An HTTP(S) receiver in a thread: answers one request with `status`, or gives up after 10 s.
class HttpReceiver {
 public:
  explicit HttpReceiver(http::status status, const pki::KeyAndCert* tls = nullptr)
      : status_(status) {
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    if (tls != nullptr) {
      tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
      tls_->use_certificate_chain(asio::buffer(tls->cert_pem));
      tls_->use_private_key(asio::buffer(tls->key_pem), ssl::context::pem);
    }
    thread_ = std::thread([this] { Serve(); });
  }
  ~HttpReceiver() { Join(); }

  uint16_t port() const { return port_; }
  std::string Url(const std::string& path = "/hook") const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  // The request that arrived (an empty method when none did), once the receiver is done.
  Request Take() {
    Join();
    return request_;
  }

 private:
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  void Serve() {
    Deadline deadline = InSeconds(10);
    tcp::socket socket(io_);
    if (Await(io_, deadline, [&](auto h) { acceptor_.async_accept(socket, h); })) return;
    if (!tls_) return Exchange(socket, deadline);
    beast::ssl_stream<tcp::socket> stream(std::move(socket), *tls_);
    if (Await(io_, deadline, [&](auto h) { stream.async_handshake(ssl::stream_base::server, h); }))
      return;
    const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    request_.sni = sni != nullptr ? sni : "";
    Exchange(stream, deadline);
  }

  template <typename Stream>
  void Exchange(Stream& stream, Deadline deadline) {
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    if (Await(io_, deadline, [&](auto h) { http::async_read(stream, buffer, req, h); })) return;
    request_.method = std::string(req.method_string());
    request_.target = std::string(req.target());
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      request_.headers[name] = std::string(field.value());
    }
    request_.body = req.body();
    http::response<http::string_body> res{status_, 11};
    if (status_ != http::status::no_content) {
      res.body() = "receiver says\nno";  // shown in the sink's error, on one line
    }
    res.prepare_payload();
    Await(io_, deadline, [&](auto h) { http::async_write(stream, res, h); });
  }

  const http::status status_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  std::unique_ptr<ssl::context> tls_;
  uint16_t port_ = 0;
  Request request_;
  std::thread thread_;
};

// A syslog TCP receiver in a thread: reads one connection to its end, then closes.
class TcpReceiver {
 public:
  TcpReceiver() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] {
      Deadline deadline = InSeconds(10);
      tcp::socket socket(io_);
      if (Await(io_, deadline, [&](auto h) { acceptor_.async_accept(socket, h); })) return;
      char buf[4096];
      for (;;) {
        size_t n = 0;
        auto ec = Await(io_, deadline, [&](auto h) {
          socket.async_read_some(asio::buffer(buf), [h, &n](beast::error_code e, size_t got) {
            n = got;
            h(e);
          });
        });
        received_.append(buf, n);
        if (ec) return;  // eof: the sender half-closed; closing now tells it we read it all
      }
    });
  }
  ~TcpReceiver() {
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  std::string Take() {
    thread_.join();
    return received_;
  }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::string received_;
  std::thread thread_;
};

// One datagram from `socket`, waiting up to 2 s.
template <typename Socket>
std::string ReceiveDatagram(Socket& socket) {
  pollfd pfd{socket.native_handle(), POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 2000) == 1);
  std::string buf(65536, '\0');
  size_t n = socket.receive(asio::buffer(buf));
  buf.resize(n);
  return buf;
}

// A port on 127.0.0.1 that nothing listens on (it was just free).
uint16_t ClosedPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

TEST_CASE("WebhookSignature matches a vector computed with openssl dgst") {
  // Computed by hand: printf '%s' '1800000000.{"id":"42","kind":"device.stale"}' |
  //                   openssl dgst -sha256 -hmac whsec_test
  CHECK(WebhookSignature(kSecret, kNowSeconds, R"({"id":"42","kind":"device.stale"})") ==
        "t=1800000000,v1=9430833ccac14148f2b6cb55b48e5f70b9524fcecc3edb2328ce9fb3c344bb9c");
}

TEST_CASE("webhook sink: a signed POST of the Alert JSON; 2xx is delivered") {
  TempDir dir("vigil-sinks");
  FakeClock clock(kNow);
  HttpReceiver receiver(http::status::no_content);
  auto sink = MustMake(WebhookJson(dir, receiver.Url("/hooks/vigil?team=ops")), clock);
  CHECK(sink->name() == "ops-hook");
  CHECK(sink->type() == "webhook");

  Delivery d = sink->Send(SampleAlert());
  CHECK(d.outcome == DeliveryOutcome::kDelivered);
  CHECK(d.error.empty());

  Request req = receiver.Take();
  CHECK(req.method == "POST");
  CHECK(req.target == "/hooks/vigil?team=ops");
  CHECK(req.headers["host"] == "127.0.0.1:" + std::to_string(receiver.port()));
  CHECK(req.headers["content-type"] == "application/json");
  CHECK(req.headers["user-agent"] == "vigil-server");
  CHECK(req.headers["x-vigil-delivery"] == "vigil-42");
  CHECK(req.headers["x-vigil-timestamp"] == "1800000000");
  // The receiver's check: HMAC over "<t>." + the body exactly as received, with the key without
  // the secret file's trailing newline.
  CHECK(req.headers["x-vigil-signature"] == WebhookSignature(kSecret, kNowSeconds, req.body));
  CHECK(req.body.find('\n') == std::string::npos);
  v1::Alert got;
  REQUIRE(ParseJsonStrict(req.body, &got, "body").ok());
  CHECK(got.id() == 42);
  CHECK(got.kind() == "device.non_compliant");
  CHECK(got.idempotency_key() == "vigil-42");
  CHECK(got.status() == v1::NON_COMPLIANT);
  CHECK(got.failing_checks_size() == 2);
}

TEST_CASE(
    "webhook sink: 408, 429, 5xx, 401/403/404/410 retried, other 4xx rejected, redirects retried") {
  TempDir dir("vigil-sinks");
  FakeClock clock(kNow);
  struct Case {
    http::status status;
    DeliveryOutcome outcome;
  } cases[] = {
      {http::status::internal_server_error, DeliveryOutcome::kRetry},
      {http::status::service_unavailable, DeliveryOutcome::kRetry},
      {http::status::too_many_requests, DeliveryOutcome::kRetry},
      {http::status::request_timeout, DeliveryOutcome::kRetry},
      {http::status::bad_request, DeliveryOutcome::kRejected},
      {http::status::not_found, DeliveryOutcome::kRetry},
      {http::status::unauthorized, DeliveryOutcome::kRetry},
      {http::status::unprocessable_entity, DeliveryOutcome::kRejected},
      {http::status::payload_too_large, DeliveryOutcome::kRejected},
      {http::status::moved_permanently, DeliveryOutcome::kRetry},
      {http::status::ok, DeliveryOutcome::kDelivered},
  };
  for (const Case& c : cases) {
    CAPTURE(static_cast<int>(c.status));
    HttpReceiver receiver(c.status);
    // A token in the path (as Slack URLs carry) must not reach the error either.
    auto sink = MustMake(WebhookJson(dir, receiver.Url("/services/T0/TOKEN123")), clock);
    Delivery d = sink->Send(SampleAlert());
    CHECK(d.outcome == c.outcome);
    if (c.outcome != DeliveryOutcome::kDelivered) {
      CHECK(d.error == "http://127.0.0.1:" + std::to_string(receiver.port()) + ": HTTP " +
                           std::to_string(static_cast<int>(c.status)) + ": receiver says no" +
                           (c.status == http::status::moved_permanently
                                ? " (redirects are not followed; fix the url)"
                                : ""));
    }
    CHECK(d.error.find("TOKEN123") == std::string::npos);
    CHECK(d.error.find(kSecret) == std::string::npos);
    CHECK(receiver.Take().headers["x-vigil-delivery"] == "vigil-42");
  }
}

TEST_CASE("webhook sink: a receiver not listening is retried") {
  TempDir dir("vigil-sinks");
  FakeClock clock(kNow);
  std::string origin = "http://127.0.0.1:" + std::to_string(ClosedPort());
  auto sink = MustMake(WebhookJson(dir, origin + "/hook"), clock);
  Delivery d = sink->Send(SampleAlert());
  CHECK(d.outcome == DeliveryOutcome::kRetry);
  CHECK(d.error.starts_with(origin + ": connect: "));
}

TEST_CASE("webhook sink: a receiver that never answers is retried at the timeout") {
  TempDir dir("vigil-sinks");
  FakeClock clock(kNow);
  // Listening but never accepting: the kernel completes the handshake and takes the request into
  // the backlog, and no response ever comes.
  asio::io_context io;
  tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::string url = "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/";
  auto sink = MustMake(WebhookJson(dir, url, R"(, "timeoutSeconds": 1)"), clock);
  auto start = std::chrono::steady_clock::now();
  Delivery d = sink->Send(SampleAlert());
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(d.outcome == DeliveryOutcome::kRetry);
  CHECK(d.error.find(": response: timed out after 1 s") != std::string::npos);
  CHECK(elapsed >= std::chrono::milliseconds(900));
  CHECK(elapsed < std::chrono::seconds(3));
}

TEST_CASE("webhook sink over https: the peer is verified against caFile, by name and address") {
  TempDir dir("vigil-sinks");
  FakeClock clock(kNow);
  int64_t now_s = std::time(nullptr);  // certificates are checked against the real time
  auto ca = pki::CreateCa("sink test CA", now_s, 1);
  REQUIRE(ca.ok());
  REQUIRE(WriteFileAtomic(dir / "ca.crt", ca->cert_pem).ok());
  std::string ca_file = R"(, "caFile": ")" + dir.path() + R"(/ca.crt")";

  SUBCASE("an IP address in the URL matches the certificate's IP SAN") {
    auto cert = pki::IssueServerCert(*ca, {"127.0.0.1"}, now_s, 1);
    REQUIRE(cert.ok());
    HttpReceiver receiver(http::status::ok, &*cert);
    auto sink = MustMake(WebhookJson(dir, receiver.Url(), ca_file), clock);
    Delivery d = sink->Send(SampleAlert());
    CHECK_MESSAGE(d.outcome == DeliveryOutcome::kDelivered, d.error);
    Request req = receiver.Take();
    CHECK(req.sni.empty());  // no SNI for an IP address
    CHECK(req.headers["x-vigil-signature"] == WebhookSignature(kSecret, kNowSeconds, req.body));
  }
  SUBCASE("a host name is sent as SNI and matched against the certificate") {
    auto cert = pki::IssueServerCert(*ca, {"localhost"}, now_s, 1);
    REQUIRE(cert.ok());
    HttpReceiver receiver(http::status::ok, &*cert);
    std::string url = "https://localhost:" + std::to_string(receiver.port()) + "/hook";
    auto sink = MustMake(WebhookJson(dir, url, ca_file), clock);
    Delivery d = sink->Send(SampleAlert());
    CHECK_MESSAGE(d.outcome == DeliveryOutcome::kDelivered, d.error);
    Request req = receiver.Take();
    CHECK(req.sni == "localhost");
    CHECK(req.headers["host"] == "localhost:" + std::to_string(receiver.port()));
  }
  SUBCASE("a certificate for another name is refused (and retried)") {
    auto cert = pki::IssueServerCert(*ca, {"other.example"}, now_s, 1);
    REQUIRE(cert.ok());
    HttpReceiver receiver(http::status::ok, &*cert);
    auto sink = MustMake(WebhookJson(dir, receiver.Url(), ca_file), clock);
    Delivery d = sink->Send(SampleAlert());
    CHECK(d.outcome == DeliveryOutcome::kRetry);
    CHECK(d.error.find(": TLS handshake: ") != std::string::npos);
    CHECK(d.error.find("IP address mismatch") != std::string::npos);
    CHECK(receiver.Take().method.empty());
  }
  SUBCASE("without caFile the private CA is not trusted") {
    auto cert = pki::IssueServerCert(*ca, {"127.0.0.1"}, now_s, 1);
    REQUIRE(cert.ok());
    HttpReceiver receiver(http::status::ok, &*cert);
    auto sink = MustMake(WebhookJson(dir, receiver.Url()), clock);
    Delivery d = sink->Send(SampleAlert());
    CHECK(d.outcome == DeliveryOutcome::kRetry);
    CHECK(d.error.find(": TLS handshake: ") != std::string::npos);
    CHECK(receiver.Take().method.empty());
  }
}

TEST_CASE("slack sink: {\"text\": summary} with quotes, newlines and Slack markup escaped") {
  FakeClock clock(kNow);
  HttpReceiver receiver(http::status::ok);
  auto sink = MustMake(R"({"name": "chat", "slack": {"url": ")" + receiver.Url() + R"("}})", clock);
  CHECK(sink->type() == "slack");
  v1::Alert alert = SampleAlert();
  alert.set_hostname("evil\"host\n<!channel> & co\\");
  Delivery d = sink->Send(alert);
  CHECK_MESSAGE(d.outcome == DeliveryOutcome::kDelivered, d.error);

  Request req = receiver.Take();
  CHECK(req.headers["content-type"] == "application/json");
  CHECK(req.headers.count("x-vigil-signature") == 0);
  CHECK(req.body.find('\n') == std::string::npos);
  google::protobuf::Struct body;
  REQUIRE(ParseJsonStrict(req.body, &body, "slack body").ok());
  REQUIRE(body.fields().size() == 1);
  CHECK(body.fields().at("text").string_value() ==
        "vigil device.non_compliant: evil\"host &lt;!channel&gt; &amp; co\\ (device dev-1) is "
        "NON_COMPLIANT (was COMPLIANT): 2 checks failed; failing checks: disk_encryption, "
        "screen_lock");
}

TEST_CASE("SyslogLine: RFC 5424 header, escaped structured data, one-line message") {
  std::string pid = std::to_string(::getpid());
  v1::Alert alert = SampleAlert();
  alert.set_idempotency_key("k\"]\\");
  CHECK(SyslogLine(alert, 13, "web-01.example", "vigil-server", kNow) ==
        "<108>1 2027-01-15T08:00:00.123Z web-01.example vigil-server " + pid +
            " device.non_compliant [vigil@32473 id=\"42\" kind=\"device.non_compliant\" "
            "device=\"dev-1\" status=\"NON_COMPLIANT\" key=\"k\\\"\\]\\\\\"] vigil "
            "device.non_compliant: web-01 (device dev-1) is NON_COMPLIANT (was COMPLIANT): 2 "
            "checks failed; failing checks: disk_encryption, screen_lock");

  // Resolved is a notice; no device or status leaves those parameters out; header fields are
  // PRINTUSASCII ("-" when empty) and the message one line.
  v1::Alert resolved;
  resolved.set_id(7);
  resolved.set_kind("device.resolved");
  resolved.set_reason("line one\nline two");
  resolved.set_idempotency_key("vigil-7");
  CHECK(SyslogLine(resolved, 16, "", "my app", 0) ==
        "<133>1 1970-01-01T00:00:00.000Z - my_app " + pid +
            " device.resolved [vigil@32473 id=\"7\" kind=\"device.resolved\" key=\"vigil-7\"] "
            "vigil device.resolved: line one line two");

  v1::Alert failures;
  failures.set_kind("enrollment.failures");
  CHECK(SyslogLine(failures, 4, "h", "a", kNow).starts_with("<36>1 "));  // auth, warning

  v1::Alert big = SampleAlert();
  big.set_reason(std::string(20000, 'x') + "\xc3\xa9");
  std::string line = SyslogLine(big, 13, "h", "a", kNow);
  CHECK(line.size() <= 8192);
  CHECK(line.starts_with("<108>1 "));
}

TEST_CASE("syslog sink over UDP: one exact RFC 5424 datagram") {
  FakeClock clock(kNow);
  asio::io_context io;
  udp::socket receiver(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::string port = std::to_string(receiver.local_endpoint().port());
  auto sink = MustMake(R"({"name": "siem", "syslog": {"address": "udp:127.0.0.1:)" + port +
                           R"(", "appName": "vigil-test", "facility": 16}})",
                       clock);
  CHECK(sink->type() == "syslog");
  Delivery d = sink->Send(SampleAlert());
  CHECK_MESSAGE(d.outcome == DeliveryOutcome::kDelivered, d.error);
  std::string got = ReceiveDatagram(receiver);
  CHECK(got == SyslogLine(SampleAlert(), 16, Hostname(), "vigil-test", kNow));
  CHECK(got.starts_with("<132>1 2027-01-15T08:00:00.123Z "));
}

TEST_CASE("syslog sink over TCP: octet counting, delivered once the receiver closes") {
  FakeClock clock(kNow);
  TcpReceiver receiver;
  auto sink = MustMake(R"({"name": "siem", "syslog": {"address": "tcp:127.0.0.1:)" +
                           std::to_string(receiver.port()) + R"("}})",
                       clock);
  Delivery d = sink->Send(SampleAlert());
  CHECK_MESSAGE(d.outcome == DeliveryOutcome::kDelivered, d.error);
  std::string line = SyslogLine(SampleAlert(), 13, Hostname(), "vigil-server", kNow);
  CHECK(receiver.Take() == std::to_string(line.size()) + " " + line);

  std::string closed = "tcp:127.0.0.1:" + std::to_string(ClosedPort());
  auto unreachable =
      MustMake(R"({"name": "siem", "syslog": {"address": ")" + closed + R"("}})", clock);
  d = unreachable->Send(SampleAlert());
  CHECK(d.outcome == DeliveryOutcome::kRetry);
  CHECK(d.error.starts_with(closed + ": connect: "));
}

TEST_CASE("syslog sink over a unix datagram socket (like /dev/log)") {
  FakeClock clock(kNow);
  TempDir dir("vigil-sinks");
  std::string path = dir / "log";
  auto sink =
      MustMake(R"({"name": "local", "syslog": {"address": "unix:)" + path + R"("}})", clock);
  // Nobody bound yet: retried.
  Delivery d = sink->Send(SampleAlert());
  CHECK(d.outcome == DeliveryOutcome::kRetry);
  CHECK(d.error.starts_with("unix:" + path + ": "));

  asio::io_context io;
  unix_dgram::socket receiver(io, unix_dgram::endpoint(path));
  d = sink->Send(SampleAlert());
  CHECK_MESSAGE(d.outcome == DeliveryOutcome::kDelivered, d.error);
  CHECK(ReceiveDatagram(receiver) ==
        SyslogLine(SampleAlert(), 13, Hostname(), "vigil-server", kNow));
}

TEST_CASE("alert sink configuration errors name the sink and the field") {
  TempDir tmp("vigil-sinks");
  const std::string& dir = tmp.path();
  REQUIRE(WriteFileAtomic(dir + "/secret", "s3cret\n").ok());
  REQUIRE(WriteFileAtomic(dir + "/empty", "\n").ok());
  REQUIRE(WriteFileAtomic(dir + "/garbage.pem", "not a certificate\n").ok());
  std::string secret = R"(, "secretFile": ")" + dir + R"(/secret")";
  FakeClock clock(kNow);
  struct Case {
    std::string json;
    std::string error;  // the whole message, or its start when it ends with "..."
  } cases[] = {
      {R"({"name": "", "syslog": {}})",
       R"(alert sink name "" must be 1..64 characters of [A-Za-z0-9._-])"},
      {R"({"name": "bad name!", "syslog": {}})",
       R"(alert sink name "bad name!" must be 1..64 characters of [A-Za-z0-9._-])"},
      {R"({"name": ")" + std::string(65, 'a') + R"(", "syslog": {}})", "alert sink name \"a..."},
      {R"({"name": "x"})", R"(alert sink "x": set one of webhook, slack or syslog)"},
      {R"({"name": "x", "webhook": {"url": "ftp://h/x"}})",
       R"(alert sink "x": webhook.url: scheme "ftp" is not supported (http:// or https://))"},
      {R"({"name": "x", "webhook": {"url": "hooks.example.com/x"}})",
       R"(alert sink "x": webhook.url: must start with http:// or https://)"},
      {R"({"name": "x", "webhook": {"url": "https://u:pw@h/")" + secret + "}}",
       R"(alert sink "x": webhook.url: user:password@ is not supported)"},
      {R"({"name": "x", "webhook": {"url": "http://h:99999/")" + secret + "}}",
       R"(alert sink "x": webhook.url: bad port "99999" (1..65535))"},
      {R"({"name": "x", "webhook": {"url": "http:///x")" + secret + "}}",
       R"(alert sink "x": webhook.url: no host)"},
      {R"({"name": "x", "webhook": {"url": "http://h/a b")" + secret + "}}",
       R"(alert sink "x": webhook.url: has a space, control or non-ASCII character (percent-encode))"},
      {R"({"name": "x", "webhook": {"url": "http://h/"}})",
       R"(alert sink "x": webhook.secretFile is required (the HMAC-SHA256 key of X-Vigil-Signature))"},
      {R"({"name": "x", "webhook": {"url": "http://h/", "secretFile": ")" + dir + R"(/none"}})",
       R"(alert sink "x": webhook.secretFile: )" + dir + "/none: No such file or directory"},
      {R"({"name": "x", "webhook": {"url": "http://h/", "secretFile": ")" + dir + R"(/empty"}})",
       R"(alert sink "x": webhook.secretFile: )" + dir + "/empty is empty"},
      {R"({"name": "x", "webhook": {"url": "http://h/", "caFile": "/etc/ssl/x.pem")" + secret +
           "}}",
       R"(alert sink "x": webhook.caFile: only for https:// urls)"},
      {R"({"name": "x", "webhook": {"url": "https://h/", "caFile": ")" + dir + R"(/none")" +
           secret + "}}",
       R"(alert sink "x": webhook.caFile: )" + dir + "/none: No such file or directory"},
      {R"({"name": "x", "webhook": {"url": "https://h/", "caFile": ")" + dir + R"(/garbage.pem")" +
           secret + "}}",
       R"(alert sink "x": webhook.caFile: )" + dir + "/garbage.pem: no PEM certificate in it..."},
      {R"({"name": "x", "webhook": {"url": "http://h/", "timeoutSeconds": 301)" + secret + "}}",
       R"(alert sink "x": webhook.timeoutSeconds: at most 300)"},
      {R"({"name": "x", "slack": {"url": "https://hooks.slack.com/T/B/C")" + secret + "}}",
       R"(alert sink "x": slack.secretFile: Slack messages are not signed; remove it)"},
      {R"({"name": "x", "slack": {"url": "mailto:ops@example.com"}})",
       R"(alert sink "x": slack.url: must start with http:// or https://)"},
      {R"({"name": "x", "syslog": {"address": "udp:loghost"}})",
       R"(alert sink "x": syslog.address: no port (HOST:PORT))"},
      {R"({"name": "x", "syslog": {"address": "tcp:[::1:514"}})",
       R"(alert sink "x": syslog.address: unclosed [ in host)"},
      {R"({"name": "x", "syslog": {"address": "unix:dev/log"}})",
       R"(alert sink "x": syslog.address: unix: needs an absolute path (unix:/dev/log))"},
      {R"({"name": "x", "syslog": {"address": "tls:loghost:6514"}})",
       R"(alert sink "x": syslog.address: "tls:loghost:6514" is not unix:/PATH, udp:HOST:PORT or tcp:HOST:PORT)"},
      {R"({"name": "x", "syslog": {"appName": "my app"}})",
       R"(alert sink "x": syslog.appName: "my app" must be 1..48 printable ASCII characters, no spaces)"},
      {R"({"name": "x", "syslog": {"facility": 24}})",
       R"(alert sink "x": syslog.facility: 24 is not 1..23)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.json);
    auto sink = MakeAlertSink(Config(c.json), clock);
    REQUIRE_FALSE(sink.ok());
    CHECK(sink.status().code() == Status::Code::kInvalidArgument);
    if (c.error.ends_with("...")) {
      CHECK(sink.status().message().starts_with(c.error.substr(0, c.error.size() - 3)));
    } else {
      CHECK(sink.status().message() == c.error);
    }
    CHECK(sink.status().message().find("s3cret") == std::string::npos);
  }

  // And the valid forms: defaults, IPv6, https with the system's roots.
  for (const std::string& json : std::vector<std::string>{
           R"({"name": "a.b_c-1", "syslog": {}})",
           R"({"name": "x", "syslog": {"address": "tcp:[::1]:6514", "facility": 23}})",
           R"({"name": "x", "webhook": {"url": "https://[::1]:8443/h?x=1#frag")" + secret + "}}",
           R"({"name": "x", "slack": {"url": "https://hooks.slack.com/services/T/B/C"}})",
       }) {
    CAPTURE(json);
    auto sink = MakeAlertSink(Config(json), clock);
    CHECK_MESSAGE(sink.ok(), sink.status().ToString());
  }
}

}  // namespace
}  // namespace vigil::server

#include "server/alert_sinks.h"

#include <google/protobuf/struct.pb.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <type_traits>

#include "common/files.h"
#include "proto/json.h"

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

constexpr uint32_t kDefaultTimeoutSeconds = 10;
constexpr uint32_t kMaxTimeoutSeconds = 300;
constexpr std::chrono::seconds kSyslogTcpTimeout{10};
constexpr size_t kMaxResponseBody = 64 * 1024;  // only the status matters; the rest is cut off
constexpr size_t kMaxErrorExcerpt = 200;        // of a response body, in Delivery::error
constexpr int kMaxSummaryChecks = 20;           // failing checks named in a summary
constexpr size_t kMaxSyslogLine = 8192;         // the MSG part is cut to stay within this
constexpr uint32_t kDefaultFacility = 13;       // log audit
constexpr const char* kDefaultSyslogAddress = "unix:/dev/log";
constexpr const char* kDefaultAppName = "vigil-server";

Delivery Delivered() { return {DeliveryOutcome::kDelivered, ""}; }
Delivery Retry(std::string error) { return {DeliveryOutcome::kRetry, std::move(error)}; }
Delivery Rejected(std::string error) { return {DeliveryOutcome::kRejected, std::move(error)}; }

bool IsControl(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }
bool IsPrintUsAscii(char c) { return c > 0x20 && c < 0x7f; }  // RFC 5424 PRINTUSASCII

// `s` with ASCII control characters (newlines included) made spaces: summaries are one line, so
// a device-reported hostname cannot forge a second line in a chat or a log.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (IsControl(c)) c = ' ';
  }
  return s;
}

// Text from outside (a response body, a bad config value) made fit for a one-line error:
// printable ASCII only, at most `max` bytes.
std::string Excerpt(std::string_view s, size_t max = kMaxErrorExcerpt) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool ValidSinkName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// The one-line human summary used by Slack and as the syslog MSG, e.g.
// `vigil device.non_compliant: web-01 (device 4f1c...) is NON_COMPLIANT (was COMPLIANT): 2 checks
// failed; failing checks: disk_encryption, screen_lock`.
std::string Summary(const v1::Alert& alert) {
  std::string s = "vigil " + alert.kind();
  if (!alert.hostname().empty() || !alert.device_id().empty()) {
    s += ": " + (alert.hostname().empty() ? std::string("(no hostname)") : alert.hostname());
    if (!alert.device_id().empty()) s += " (device " + alert.device_id() + ")";
  }
  if (alert.status() != v1::DEVICE_STATUS_UNSPECIFIED) {
    s += " is " + v1::DeviceStatus_Name(alert.status());
    if (alert.previous_status() != v1::DEVICE_STATUS_UNSPECIFIED) {
      s += " (was " + v1::DeviceStatus_Name(alert.previous_status()) + ")";
    }
  }
  if (!alert.reason().empty()) s += ": " + alert.reason();
  if (alert.failing_checks_size() > 0) {
    s += "; failing checks: ";
    int shown = std::min(alert.failing_checks_size(), kMaxSummaryChecks);
    for (int i = 0; i < shown; ++i) s += (i > 0 ? ", " : "") + alert.failing_checks(i);
    if (shown < alert.failing_checks_size()) {
      s += " and " + std::to_string(alert.failing_checks_size() - shown) + " more";
    }
  }
  return OneLine(std::move(s));
}

// Slack reads &, < and > as markup ("<!channel>" notifies everyone), so they are escaped as its
// formatting rules ask; JSON escaping is the protobuf printer's.
std::string SlackBody(const v1::Alert& alert) {
  std::string text;
  for (char c : Summary(alert)) {
    switch (c) {
      case '&':
        text += "&amp;";
        break;
      case '<':
        text += "&lt;";
        break;
      case '>':
        text += "&gt;";
        break;
      default:
        text += c;
    }
  }
  google::protobuf::Struct body;
  (*body.mutable_fields())["text"].set_string_value(text);
  return ToJson(body, /*pretty=*/false);
}

// "HOST:PORT" or "[V6]:PORT"; a missing port is `default_port` (none allowed when empty).
Status ParseHostPort(std::string_view s, std::string_view default_port, std::string* host,
                     std::string* port, bool* bracketed = nullptr) {
  std::string_view rest;
  if (s.starts_with('[')) {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("unclosed [ in host");
    *host = std::string(s.substr(1, close - 1));
    boost::system::error_code ec;
    asio::ip::make_address_v6(*host, ec);
    if (ec) return Status::InvalidArgument("\"" + Excerpt(*host) + "\" is not an IPv6 address");
    rest = s.substr(close + 1);
    if (bracketed != nullptr) *bracketed = true;
  } else {
    size_t colon = s.find(':');
    *host = std::string(s.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : s.substr(colon);
    for (char c : *host) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-' || c == '_';
      if (!ok) return Status::InvalidArgument("bad host \"" + Excerpt(*host) + "\"");
    }
  }
  if (host->empty()) return Status::InvalidArgument("no host");
  if (rest.empty()) {
    if (default_port.empty()) return Status::InvalidArgument("no port (HOST:PORT)");
    *port = std::string(default_port);
    return Status::Ok();
  }
  if (rest[0] != ':') return Status::InvalidArgument("junk after the host");
  *port = std::string(rest.substr(1));
  bool digits =
      !port->empty() && port->size() <= 5 &&
      std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stoi(*port) == 0 || std::stoi(*port) > 65535) {
    return Status::InvalidArgument("bad port \"" + Excerpt(*port) + "\" (1..65535)");
  }
  return Status::Ok();
}

struct Url {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string target;     // path and query, at least "/"
  std::string authority;  // the Host header: host, and the port when not the scheme's default
  // What errors may show: the path and query can hold a token (Slack URLs do).
  std::string Origin() const { return (tls ? "https://" : "http://") + authority; }
};

Result<Url> ParseUrl(const std::string& text) {
  Url url;
  std::string_view rest = text;
  if (rest.starts_with("https://")) {
    url.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    size_t scheme_end = text.find("://");
    if (scheme_end == std::string::npos) {
      return Status::InvalidArgument("must start with http:// or https://");
    }
    return Status::InvalidArgument("scheme \"" + Excerpt(text.substr(0, scheme_end), 16) +
                                   "\" is not supported (http:// or https://)");
  }
  for (char c : rest) {
    if (c == ' ' || IsControl(c) || static_cast<unsigned char>(c) >= 0x80) {
      return Status::InvalidArgument(
          "has a space, control or non-ASCII character (percent-encode)");
    }
  }
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos) {
    return Status::InvalidArgument("user:password@ is not supported");
  }
  bool v6 = false;
  const char* default_port = url.tls ? "443" : "80";
  if (Status s = ParseHostPort(authority, default_port, &url.host, &url.port, &v6); !s.ok()) {
    return s;
  }
  url.authority = v6 ? "[" + url.host + "]" : url.host;
  if (url.port != default_port) url.authority += ":" + url.port;
  std::string_view target = end == std::string_view::npos ? "" : rest.substr(end);
  target = target.substr(0, target.find('#'));  // a fragment is never sent
  url.target = target.starts_with('/') ? std::string(target) : "/" + std::string(target);
  return url;
}

// An https client context: TLS 1.2 or later, the peer verified against `ca_file` (PEM, one or
// more certificates) or the system's roots. Shared by every attempt (SSL_CTX is thread-safe).
Result<std::shared_ptr<ssl::context>> MakeTlsContext(const std::string& ca_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
    return Status::Internal("cannot set the minimum TLS version");
  }
  ctx->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) return Status::Internal("cannot load the system's CA certificates: " + ec.message());
    return ctx;
  }
  auto pem = ReadWholeFile(ca_file, 1u << 20);
  if (!pem.ok()) return Status::InvalidArgument(pem.status().message());
  ctx->add_certificate_authority(asio::buffer(*pem), ec);
  if (ec) {
    return Status::InvalidArgument(ca_file + ": no PEM certificate in it (" + ec.message() + ")");
  }
  return ctx;
}

// Runs one asynchronous operation to completion and returns its error. Beast's stream timeouts
// only bound asynchronous operations, so each step of an attempt is started asynchronously and
// waited for here: the attempt stays synchronous for the caller and every step ends by the
// stream's deadline (beast::error::timeout).
template <typename Start>
beast::error_code Step(asio::io_context& io, Start&& start) {
  beast::error_code result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

template <typename Stream>
constexpr bool kIsTls = !std::is_same_v<Stream, beast::tcp_stream>;

// HTTP(S) POST of a JSON body: the webhook sink (signed Alert JSON) and the Slack sink
// ({"text": summary}, unsigned).
class HttpSink final : public AlertSink {
 public:
  HttpSink(std::string name, bool slack, Url url, std::string secret,
           std::shared_ptr<ssl::context> tls, std::chrono::seconds timeout, const Clock& clock)
      : name_(std::move(name)),
        slack_(slack),
        url_(std::move(url)),
        secret_(std::move(secret)),
        tls_(std::move(tls)),
        timeout_(timeout),
        clock_(clock) {}

  const std::string& name() const override { return name_; }
  std::string type() const override { return slack_ ? "slack" : "webhook"; }

  Delivery Send(const v1::Alert& alert) override {
    try {
      http::request<http::string_body> req{http::verb::post, url_.target, 11};
      req.set(http::field::host, url_.authority);
      req.set(http::field::user_agent, "vigil-server");
      req.set(http::field::content_type, "application/json");
      req.set(http::field::connection, "close");
      if (slack_) {
        req.body() = SlackBody(alert);
      } else {
        const std::string& key = alert.idempotency_key();
        for (char c : key) {
          // Header values cannot carry these; the server makes keys, so this is a bug there.
          if (IsControl(c) || static_cast<unsigned char>(c) >= 0x80) {
            return Rejected("idempotency key of alert " + std::to_string(alert.id()) +
                            " is not printable ASCII");
          }
        }
        req.body() = ToJson(alert, /*pretty=*/false);
        int64_t now_ms = clock_.NowMillis();
        int64_t t = now_ms / 1000 - (now_ms % 1000 < 0 ? 1 : 0);
        req.set("X-Vigil-Timestamp", std::to_string(t));
        req.set("X-Vigil-Signature", WebhookSignature(secret_, t, req.body()));
        req.set("X-Vigil-Delivery", key);
      }
      req.prepare_payload();
      return Post(req);
    } catch (const std::exception& e) {  // allocation, or OpenSSL failing to make an SSL
      return Retry(url_.Origin() + ": " + OneLine(e.what()));
    }
  }

 private:
  Delivery Post(const http::request<http::string_body>& req) {
    Deadline deadline = std::chrono::steady_clock::now() + timeout_;
    asio::io_context io;
    // Resolution is synchronous: getaddrinfo cannot be cancelled, so a lookup is bounded by the
    // system resolver's timeouts (resolv.conf), not by timeout_seconds.
    tcp::resolver resolver(io);
    beast::error_code ec;
    auto endpoints = resolver.resolve(url_.host, url_.port, ec);
    if (ec) return Retry(url_.Origin() + ": resolve: " + OneLine(ec.message()));
    if (!tls_) {
      beast::tcp_stream stream(io);
      return Exchange(io, stream, endpoints, req, deadline);
    }
    beast::ssl_stream<beast::tcp_stream> stream(io, *tls_);
    SSL* ssl = stream.native_handle();
    boost::system::error_code not_ip;
    asio::ip::make_address(url_.host, not_ip);
    if (not_ip) {
      // SNI (SSL_set_tlsext_host_name, spelled out: the macro casts C-style), and the
      // certificate must name the host (SSL_set1_host: OpenSSL's RFC 6125 check).
      if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                   const_cast<char*>(url_.host.c_str())) != 1 ||
          SSL_set1_host(ssl, url_.host.c_str()) != 1) {
        return Retry(url_.Origin() + ": cannot set the TLS server name");
      }
    } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str()) != 1) {
      return Retry(url_.Origin() + ": cannot set the TLS server address");  // no SNI for IPs
    }
    Delivery delivery = Exchange(io, stream, endpoints, req, deadline);
    ERR_clear_error();  // a failed handshake leaves OpenSSL errors on this thread's queue
    return delivery;
  }

  template <typename Stream>
  Delivery Exchange(asio::io_context& io, Stream& stream, const tcp::resolver::results_type& to,
                    const http::request<http::string_body>& req, Deadline deadline) {
    beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.expires_at(deadline);  // one deadline for connect, handshake, request, response
    if (auto ec = Step(io, [&](auto h) { tcp_stream.async_connect(to, h); })) {
      return Retry(Failure("connect", ec));
    }
    if constexpr (kIsTls<Stream>) {
      if (auto ec =
              Step(io, [&](auto h) { stream.async_handshake(ssl::stream_base::client, h); })) {
        std::string error = Failure("TLS handshake", ec);
        long verify = SSL_get_verify_result(stream.native_handle());
        if (verify != X509_V_OK) error += std::string(": ") + X509_verify_cert_error_string(verify);
        return Retry(error);
      }
    }
    if (auto ec = Step(io, [&](auto h) { http::async_write(stream, req, h); })) {
      return Retry(Failure("send", ec));
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    auto ec = Step(io, [&](auto h) { http::async_read(stream, buffer, parser, h); });
    // Once the status line is in, the receiver has decided; a body cut short changes nothing.
    if (!parser.is_header_done()) return Retry(Failure("response", ec));
    return Classify(parser.get().result_int(), parser.get().body());
  }

  Delivery Classify(unsigned status, const std::string& body) const {
    if (status >= 200 && status < 300) return Delivered();
    std::string error = url_.Origin() + ": HTTP " + std::to_string(status);
    if (std::string excerpt = Excerpt(body); !excerpt.empty()) error += ": " + excerpt;
    // A wrong secret, path or a receiver mid-deploy (401, 403, 404, 410) is fixed on the
    // receiver's side: keep the alerts until it is. Only a refusal of this alert's content
    // (400, 413, 422 and the rest of 4xx) gives it up.
    if (status == 408 || status == 429 || status >= 500 || status == 401 || status == 403 ||
        status == 404 || status == 410) {
      return Retry(error);
    }
    if (status >= 400) return Rejected(error);
    // 1xx and 3xx: the receiver refused nothing. A redirect means the URL needs fixing (they are
    // not followed); keep the alerts until it is rather than give them up.
    if (status >= 300) error += " (redirects are not followed; fix the url)";
    return Retry(error);
  }

  std::string Failure(const char* step, const beast::error_code& ec) const {
    std::string why = ec == beast::error::timeout
                          ? "timed out after " + std::to_string(timeout_.count()) + " s"
                          : OneLine(ec.message());
    return url_.Origin() + ": " + step + ": " + why;
  }

  const std::string name_;
  const bool slack_;
  const Url url_;
  const std::string secret_;                 // the HMAC key; empty for Slack. Never in an error.
  const std::shared_ptr<ssl::context> tls_;  // null for http://
  const std::chrono::seconds timeout_;
  const Clock& clock_;
};

Result<std::unique_ptr<AlertSink>> MakeHttpSink(const std::string& name, bool slack,
                                                const v1::WebhookSink& config, const Clock& clock,
                                                const std::string& where) {
  auto url = ParseUrl(config.url());
  if (!url.ok()) return url.status().Prefixed(where + "url: ");
  std::string secret;
  if (slack) {
    if (!config.secret_file().empty()) {
      return Status::InvalidArgument(where +
                                     "secretFile: Slack messages are not signed; remove it");
    }
  } else {
    if (config.secret_file().empty()) {
      return Status::InvalidArgument(
          where + "secretFile is required (the HMAC-SHA256 key of X-Vigil-Signature)");
    }
    auto read = ReadSecretFile(config.secret_file());
    if (!read.ok())
      return Status::InvalidArgument(where + "secretFile: " + read.status().message());
    if (read->empty()) {
      return Status::InvalidArgument(where + "secretFile: " + config.secret_file() + " is empty");
    }
    secret = std::move(read).value();
  }
  uint32_t timeout =
      config.timeout_seconds() == 0 ? kDefaultTimeoutSeconds : config.timeout_seconds();
  if (timeout > kMaxTimeoutSeconds) {
    return Status::InvalidArgument(where + "timeoutSeconds: at most " +
                                   std::to_string(kMaxTimeoutSeconds));
  }
  std::shared_ptr<ssl::context> tls;
  if (url->tls) {
    auto ctx = MakeTlsContext(config.ca_file());
    if (!ctx.ok()) return ctx.status().Prefixed(where + "caFile: ");
    tls = std::move(ctx).value();
  } else if (!config.ca_file().empty()) {
    return Status::InvalidArgument(where + "caFile: only for https:// urls");
  }
  return std::unique_ptr<AlertSink>(new HttpSink(name, slack, std::move(url).value(),
                                                 std::move(secret), std::move(tls),
                                                 std::chrono::seconds(timeout), clock));
}

struct SyslogAddress {
  enum class Transport { kUnix, kUdp, kTcp };
  Transport transport = Transport::kUnix;
  std::string path;  // unix
  std::string host;  // udp, tcp
  std::string port;
};

Result<SyslogAddress> ParseSyslogAddress(const std::string& text) {
  SyslogAddress address;
  std::string_view s = text;
  if (s.starts_with("unix:")) {
    address.path = text.substr(5);
    if (!address.path.starts_with('/')) {
      return Status::InvalidArgument("unix: needs an absolute path (unix:/dev/log)");
    }
    if (address.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return Status::InvalidArgument("the socket path is too long");
    }
    return address;
  }
  if (s.starts_with("udp:") || s.starts_with("tcp:")) {
    address.transport =
        s.starts_with("udp:") ? SyslogAddress::Transport::kUdp : SyslogAddress::Transport::kTcp;
    if (Status st = ParseHostPort(s.substr(4), "", &address.host, &address.port); !st.ok()) {
      return st;
    }
    return address;
  }
  return Status::InvalidArgument("\"" + Excerpt(text) +
                                 "\" is not unix:/PATH, udp:HOST:PORT or tcp:HOST:PORT");
}

// A HEADER field of RFC 5424: 1..max PRINTUSASCII ("-" when empty), others made '_'.
std::string HeaderField(const std::string& value, size_t max) {
  if (value.empty()) return "-";
  std::string out = value.substr(0, max);
  for (char& c : out) {
    if (!IsPrintUsAscii(c)) c = '_';
  }
  return out;
}

// An SD-PARAM: name="value" with ", \ and ] escaped (RFC 5424 6.3.3), control characters made
// spaces so the line stays one line.
void AppendParam(std::string* line, const char* name, const std::string& value) {
  *line += ' ';
  *line += name;
  *line += "=\"";
  for (char c : OneLine(value)) {
    if (c == '"' || c == '\\' || c == ']') *line += '\\';
    *line += c;
  }
  *line += '"';
}

// RFC 3339 in UTC with milliseconds, e.g. 2027-01-15T08:00:00.000Z.
std::string Rfc3339Millis(int64_t ms) {
  int64_t seconds = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
  int millis = static_cast<int>(ms - seconds * 1000);
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

class SyslogSink final : public AlertSink {
 public:
  SyslogSink(std::string name, std::string address_text, SyslogAddress address,
             std::string app_name, uint32_t facility, std::string hostname, const Clock& clock)
      : name_(std::move(name)),
        address_text_(std::move(address_text)),
        address_(std::move(address)),
        app_name_(std::move(app_name)),
        facility_(facility),
        hostname_(std::move(hostname)),
        clock_(clock) {}

  const std::string& name() const override { return name_; }
  std::string type() const override { return "syslog"; }

  Delivery Send(const v1::Alert& alert) override {
    std::string line = SyslogLine(alert, facility_, hostname_, app_name_, clock_.NowMillis());
    try {
      switch (address_.transport) {
        case SyslogAddress::Transport::kUnix:
          return SendDatagram<unix_dgram>(line, unix_dgram::endpoint(address_.path));
        case SyslogAddress::Transport::kUdp:
          return SendUdp(line);
        case SyslogAddress::Transport::kTcp:
          return SendTcp(line);
      }
    } catch (const std::exception& e) {
      return Retry(address_text_ + ": " + OneLine(e.what()));
    }
    return Retry(address_text_ + ": unknown transport");
  }

 private:
  // One datagram, sent without blocking: a full receive queue (a busy journald) is a retry later
  // rather than a stalled dispatcher. Nothing tells whether a UDP datagram arrived.
  template <typename Protocol>
  Delivery SendDatagram(const std::string& line, const typename Protocol::endpoint& to) {
    asio::io_context io;
    typename Protocol::socket socket(io);
    boost::system::error_code ec;
    socket.open(to.protocol(), ec);
    if (!ec) socket.non_blocking(true, ec);
    if (!ec) socket.send_to(asio::buffer(line), to, 0, ec);
    if (ec == asio::error::message_size) {
      return Rejected(address_text_ + ": " + std::to_string(line.size()) +
                      "-byte message: " + OneLine(ec.message()));
    }
    if (ec) return Retry(address_text_ + ": " + OneLine(ec.message()));
    return Delivered();
  }

  Delivery SendUdp(const std::string& line) {
    asio::io_context io;
    udp::resolver resolver(io);
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(address_.host, address_.port, ec);
    if (ec) return Retry(address_text_ + ": resolve: " + OneLine(ec.message()));
    return SendDatagram<udp>(line, endpoints.begin()->endpoint());
  }

  // RFC 6587 octet counting: "LEN SP MSG". Delivered only once the receiver has read it all: we
  // half-close and wait for the receiver to close in turn, which it does after reading to our
  // end of stream. A receiver that closes with the message unread resets the connection instead
  // (and one that never closes times out): both are retried, and receivers deduplicate on key.
  Delivery SendTcp(const std::string& line) {
    asio::io_context io;
    tcp::resolver resolver(io);
    beast::error_code ec;
    auto endpoints = resolver.resolve(address_.host, address_.port, ec);
    if (ec) return Retry(address_text_ + ": resolve: " + OneLine(ec.message()));
    beast::tcp_stream stream(io);
    stream.expires_after(kSyslogTcpTimeout);
    auto failure = [&](const char* step, const beast::error_code& e) {
      return Retry(address_text_ + ": " + step + ": " +
                   (e == beast::error::timeout ? "timed out" : OneLine(e.message())));
    };
    if ((ec = Step(io, [&](auto h) { stream.async_connect(endpoints, h); }))) {
      return failure("connect", ec);
    }
    std::string framed = std::to_string(line.size()) + " " + line;
    if ((ec = Step(io, [&](auto h) { asio::async_write(stream, asio::buffer(framed), h); }))) {
      return failure("send", ec);
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return failure("shutdown", ec);
    char discard[256];
    for (;;) {
      ec = Step(io, [&](auto h) { stream.async_read_some(asio::buffer(discard), h); });
      if (ec == asio::error::eof) return Delivered();
      if (ec) return failure("waiting for the receiver to close", ec);
    }
  }

  const std::string name_;
  const std::string address_text_;  // as configured, for errors
  const SyslogAddress address_;
  const std::string app_name_;
  const uint32_t facility_;
  const std::string hostname_;
  const Clock& clock_;
};

Result<std::unique_ptr<AlertSink>> MakeSyslogSink(const std::string& name,
                                                  const v1::SyslogSink& config, const Clock& clock,
                                                  const std::string& where) {
  std::string address_text = config.address().empty() ? kDefaultSyslogAddress : config.address();
  auto address = ParseSyslogAddress(address_text);
  if (!address.ok()) return address.status().Prefixed(where + "address: ");
  std::string app_name = config.app_name().empty() ? kDefaultAppName : config.app_name();
  bool app_ok = app_name.size() <= 48;
  for (char c : app_name) app_ok = app_ok && IsPrintUsAscii(c);
  if (!app_ok) {
    return Status::InvalidArgument(where + "appName: \"" + Excerpt(app_name, 64) +
                                   "\" must be 1..48 printable ASCII characters, no spaces");
  }
  uint32_t facility = config.facility() == 0 ? kDefaultFacility : config.facility();
  if (facility > 23) {
    return Status::InvalidArgument(where + "facility: " + std::to_string(facility) +
                                   " is not 1..23");
  }
  char host[256] = {};
  std::string hostname = ::gethostname(host, sizeof(host) - 1) == 0 ? host : "";
  return std::unique_ptr<AlertSink>(new SyslogSink(name, std::move(address_text),
                                                   std::move(address).value(), std::move(app_name),
                                                   facility, std::move(hostname), clock));
}

}  // namespace

Result<std::unique_ptr<AlertSink>> MakeAlertSink(const v1::AlertSink& config, const Clock& clock) {
  if (!ValidSinkName(config.name())) {
    return Status::InvalidArgument("alert sink name \"" + Excerpt(config.name(), 80) +
                                   "\" must be 1..64 characters of [A-Za-z0-9._-]");
  }
  const std::string where = "alert sink \"" + config.name() + "\": ";
  try {
    switch (config.kind_case()) {
      case v1::AlertSink::kWebhook:
        return MakeHttpSink(config.name(), false, config.webhook(), clock, where + "webhook.");
      case v1::AlertSink::kSlack:
        return MakeHttpSink(config.name(), true, config.slack(), clock, where + "slack.");
      case v1::AlertSink::kSyslog:
        return MakeSyslogSink(config.name(), config.syslog(), clock, where + "syslog.");
      case v1::AlertSink::KIND_NOT_SET:
        break;
    }
  } catch (const std::exception& e) {  // OpenSSL failing to make a context
    return Status::Internal(where + OneLine(e.what()));
  }
  return Status::InvalidArgument(where + "set one of webhook, slack or syslog");
}

std::string WebhookSignature(const std::string& secret, int64_t unix_seconds,
                             const std::string& body) {
  std::string message = std::to_string(unix_seconds) + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "t=" + std::to_string(unix_seconds) + ",v1=";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

std::string SyslogLine(const v1::Alert& alert, uint32_t facility, const std::string& hostname,
                       const std::string& app_name, int64_t now_ms) {
  // Severity: notice (5) when a device is back in compliance, warning (4) for everything else.
  uint32_t severity = alert.kind() == "device.resolved" ? 5 : 4;
  std::string line = "<" + std::to_string(facility * 8 + severity) + ">1 " + Rfc3339Millis(now_ms) +
                     " " + HeaderField(hostname, 255) + " " + HeaderField(app_name, 48) + " " +
                     std::to_string(::getpid()) + " " + HeaderField(alert.kind(), 32) + " ";
  // 32473 is the example enterprise number of RFC 5612: Vigil has none of its own.
  line += "[vigil@32473";
  AppendParam(&line, "id", std::to_string(alert.id()));
  AppendParam(&line, "kind", alert.kind());
  if (!alert.device_id().empty()) AppendParam(&line, "device", alert.device_id());
  if (alert.status() != v1::DEVICE_STATUS_UNSPECIFIED) {
    AppendParam(&line, "status", v1::DeviceStatus_Name(alert.status()));
  }
  AppendParam(&line, "key", alert.idempotency_key());
  line += "] ";
  std::string msg = Summary(alert);
  if (line.size() + msg.size() > kMaxSyslogLine) {
    size_t keep = line.size() < kMaxSyslogLine ? kMaxSyslogLine - line.size() : 0;
    while (keep > 0 && (static_cast<unsigned char>(msg[keep]) & 0xC0) == 0x80) --keep;  // UTF-8
    msg.resize(keep);
  }
  return line + msg;
}

}  // namespace vigil::server

// The security team's HTTPS side of vigil-server, on a port of its own (--http-listen): a JSON
// API mirroring FleetService, GET /metrics in Prometheus' text format, and the dashboard (the
// files of server/dashboard/, embedded at build time). docs/api.md is the reference.
//
// HttpApi is the application: a plain request in, a response out. It is as thin as the gRPC
// layer: authorize, turn the query string or JSON body into the FleetService request message,
// call Fleet (or PolicyChanges for the policy and its exceptions), print the response message in
// the protobuf JSON mapping. Authentication is
// FleetService's (AuthenticateBearer/CheckRole in services.h): the same tokens and roles, and
// failures counted, rate-limited per address and audited alike. Thread-safe.
//
// HttpServer serves an HttpApi over TLS 1.3 with the server's certificate, using Boost.Beast on
// `threads` threads of its own. Start binds; Stop (or the destructor) stops serving, lets the
// requests being handled finish and joins the threads; the destructor drops open connections.
// Limits: request header 16 KiB (431), body 64 KiB (413), TLS handshake and each request header
// within header_timeout, a body within body_timeout, at most max_connections open (further ones are
// closed at accept and counted as http.rejected.connections).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "proto/pki.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "server/policy_changes.h"

namespace vigil::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent: "/api/v1/devices?status=STALE"
  std::optional<std::string> authorization;  // the Authorization header's value
  std::optional<std::string> if_none_match;  // for the dashboard's files
  std::string body;
  // The client as gRPC names peers ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555"), so failed
  // authentications are rate-limited per address across both ports.
  std::string peer;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
};

class HttpApi {
 public:
  HttpApi(Fleet& fleet, PolicyChanges& changes, Credentials& credentials, Aggregator& aggregator,
          Counters& counters, const Histogram& report_duration);

  HttpResponse Handle(const HttpRequest& request);

  // The error body every failure carries: {"error": {"code": "NOT_FOUND", "message": "..."}}.
  static HttpResponse Error(int http_status, const std::string& code, const std::string& message);
  static HttpResponse Error(const Status& status);

 private:
  using Query = std::vector<std::pair<std::string, std::string>>;  // decoded, in order
  HttpResponse Api(const HttpRequest& request, const std::string& path, const std::string& query);
  // /api/v1/policy... and /api/v1/exceptions...; `seg`: the path's segments after /api/v1/.
  HttpResponse PolicyRoutes(const HttpRequest& request, const std::vector<std::string>& seg,
                            const Query& query);
  HttpResponse ExceptionRoutes(const HttpRequest& request, const std::vector<std::string>& seg,
                               const Query& query);
  HttpResponse Metrics(const HttpRequest& request);
  // The principal, or the error response (401, 403 or 429) in `denied`.
  std::optional<Principal> Authorize(const HttpRequest& request, Permission permission,
                                     const std::string& method, HttpResponse* denied);

  Fleet& fleet_;
  PolicyChanges& changes_;
  Credentials& credentials_;
  Aggregator& aggregator_;
  Counters& counters_;
  const Histogram& report_duration_;
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 = any free port
  int threads = 2;
  size_t max_connections = 128;
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 64 << 10;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
};

class HttpServer {
 public:
  // Binds `options.listen` and starts serving `api` with `server` (the server's certificate and
  // key). `api` and `counters` must outlive the HttpServer.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   const pki::KeyAndCert& server, HttpApi& api,
                                                   Counters& counters);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // HOST:PORT with the port actually bound (HOST as given in options.listen).
  const std::string& bound_address() const { return bound_; }
  uint16_t port() const { return port_; }
  void Stop();  // idempotent

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string bound_;
  uint16_t port_ = 0;
};

}  // namespace vigil::server

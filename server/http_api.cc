#include "server/http_api.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <limits>
#include <set>
#include <thread>

#include "proto/json.h"
#include "server/dashboard/assets.h"
#include "server/services.h"

namespace vigil::server {

namespace {

// ---- text helpers ---------------------------------------------------------------------------

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX-decoding; '+' is a space in query strings only. False on a malformed escape or a NUL.
bool PercentDecode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      if (c == '\0') return false;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    *out += c;
  }
  return true;
}

using Query = std::vector<std::pair<std::string, std::string>>;

Status ParseQuery(std::string_view raw, Query* out) {
  size_t start = 0;
  while (start < raw.size()) {
    size_t amp = raw.find('&', start);
    if (amp == std::string_view::npos) amp = raw.size();
    std::string_view pair = raw.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key, value;
    if (!PercentDecode(pair.substr(0, eq), true, &key) ||
        (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), true, &value))) {
      return Status::InvalidArgument("malformed %-escape in the query string");
    }
    out->emplace_back(std::move(key), std::move(value));
  }
  return Status::Ok();
}

// Fills `msg` from query parameters named like its JSON fields ("failingCheck", "limit"), with
// the protobuf JSON mapping's rules for each type (enum names, RFC 3339 timestamps, decimal
// integers). Only `allowed` names; each at most once; an empty value means "not given".
// `renames` gives the JSON field of a parameter named otherwise (diff's "from": "fromVersion").
Status QueryInto(const Query& query, const std::vector<std::string>& allowed,
                 google::protobuf::Message* msg,
                 const std::vector<std::pair<std::string, std::string>>& renames = {}) {
  auto json_name = [&](const std::string& key) {
    for (const auto& [name, field] : renames) {
      if (name == key) return field;
    }
    return key;
  };
  std::string json = "{";
  std::set<std::string> seen;
  for (const auto& [key, value] : query) {
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == key;
    if (!ok) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      return Status::InvalidArgument(
          "unknown query parameter '" + Printable(key, 64) + "'" +
          (names.empty() ? " (this route takes none)" : " (this route takes " + names + ")"));
    }
    if (!seen.insert(key).second) {
      return Status::InvalidArgument("query parameter '" + key + "' given twice");
    }
    if (value.empty()) continue;
    if (json.size() > 1) json += ",";
    json += JsonString(json_name(key)) + ":" + JsonString(value);
  }
  json += "}";
  msg->Clear();
  Status s = ParseJsonStrict(json, msg, "query");
  if (s.ok() || renames.empty()) return s;
  // The parser names the message's field; name the parameter as the client wrote it.
  std::unique_ptr<google::protobuf::Message> one(msg->New());
  for (const auto& [key, value] : query) {
    if (value.empty()) continue;
    if (!ParseJsonStrict("{" + JsonString(json_name(key)) + ":" + JsonString(value) + "}",
                         one.get(), "query")
             .ok()) {
      return Status::InvalidArgument("query parameter '" + key + "': malformed value '" +
                                     Printable(value, 64) + "'");
    }
  }
  return s;
}

// ---- responses ------------------------------------------------------------------------------

// Every response: no sniffing, no framing, no referrer; the dashboard's policy (scripts, styles
// and requests only from this origin, nothing inline) also covers the API's answers.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

void AddCommonHeaders(HttpResponse* r) {
  r->headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  r->headers.emplace_back("X-Content-Type-Options", "nosniff");
  r->headers.emplace_back("X-Frame-Options", "DENY");
  r->headers.emplace_back("Referrer-Policy", "no-referrer");
}

HttpResponse Json(const google::protobuf::Message& msg) {
  HttpResponse r;
  r.content_type = "application/json";
  r.body = ToJson(msg, /*pretty=*/false, /*with_defaults=*/true);
  r.body += "\n";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

template <typename T>
HttpResponse Reply(const Result<T>& result) {
  if (!result.ok()) return HttpApi::Error(result.status());
  return Json(*result);
}

struct StatusMapping {
  int http;
  const char* code;
};

StatusMapping MapStatus(Status::Code code) {
  using C = Status::Code;
  switch (code) {
    case C::kOk:
      return {200, "OK"};
    case C::kNotFound:
      return {404, "NOT_FOUND"};
    case C::kPermissionDenied:
      return {403, "PERMISSION_DENIED"};
    case C::kInvalidArgument:
      return {400, "INVALID_ARGUMENT"};
    case C::kUnavailable:
      return {503, "UNAVAILABLE"};
    case C::kDeadlineExceeded:
      return {504, "DEADLINE_EXCEEDED"};
    case C::kAlreadyExists:
      return {409, "ALREADY_EXISTS"};
    case C::kFailedPrecondition:
      return {409, "FAILED_PRECONDITION"};
    case C::kUnauthenticated:
      return {401, "UNAUTHENTICATED"};
    case C::kResourceExhausted:
      return {429, "RESOURCE_EXHAUSTED"};
    case C::kIoError:
    case C::kCorruption:
    case C::kInternal:
      break;
  }
  return {500, "INTERNAL"};
}

// ---- the dashboard's files -----------------------------------------------------------------

struct StaticFile {
  std::string name;
  std::string_view body;
  std::string content_type;
  std::string etag;  // a strong validator: part of the SHA-256 of the body
};

std::string ContentTypeOf(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

const std::vector<StaticFile>& StaticFiles() {
  static const std::vector<StaticFile> files = [] {
    std::vector<StaticFile> out;
    for (const auto& a : dashboard::Assets()) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      EVP_Digest(a.body.data(), a.body.size(), digest, &len, EVP_sha256(), nullptr);
      std::string etag = "\"";
      for (unsigned i = 0; i < 12 && i < len; ++i) {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02x", digest[i]);
        etag += buf;
      }
      etag += "\"";
      out.push_back({std::string(a.name), a.body, ContentTypeOf(a.name), etag});
    }
    return out;
  }();
  return files;
}

const StaticFile* FindStatic(const std::string& path) {
  std::string name = path == "/" ? "index.html" : path.substr(1);
  for (const auto& f : StaticFiles()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

HttpResponse ServeStatic(const StaticFile& f, const HttpRequest& req) {
  HttpResponse r;
  r.headers.emplace_back("ETag", f.etag);
  // Revalidated on every load (cheap: 304 by ETag), so an upgraded server's page is used at once.
  r.headers.emplace_back("Cache-Control", "no-cache");
  if (req.if_none_match && *req.if_none_match == f.etag) {
    r.status = 304;
    return r;
  }
  r.content_type = f.content_type;
  r.body.assign(f.body.data(), f.body.size());
  return r;
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

HttpResponse MethodNotAllowed(const std::string& allow) {
  HttpResponse r = HttpApi::Error(405, "METHOD_NOT_ALLOWED", "this path takes " + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

// A request body into `msg`; an empty body is an empty message.
Status BodyInto(const std::string& body, google::protobuf::Message* msg) {
  msg->Clear();
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return Status::Ok();
  return ParseJsonStrict(body, msg, "request body");
}

// The {id} segment of /policy/changes/{id}... and /exceptions/{id}/...: a positive decimal
// number (at most 19 digits, so it cannot overflow).
bool ParseIdSegment(const std::string& raw, uint64_t* id) {
  if (raw.empty() || raw.size() > 19) return false;
  uint64_t v = 0;
  for (char c : raw) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *id = v;
  return v != 0;
}

}  // namespace

// ---- HttpApi --------------------------------------------------------------------------------

HttpApi::HttpApi(Fleet& fleet, PolicyChanges& changes, Credentials& credentials,
                 Aggregator& aggregator, Counters& counters, const Histogram& report_duration)
    : fleet_(fleet),
      changes_(changes),
      credentials_(credentials),
      aggregator_(aggregator),
      counters_(counters),
      report_duration_(report_duration) {}

HttpResponse HttpApi::Error(int http_status, const std::string& code, const std::string& message) {
  HttpResponse r;
  r.status = http_status;
  r.content_type = "application/json";
  r.body =
      "{\"error\":{\"code\":" + JsonString(code) + ",\"message\":" + JsonString(message) + "}}\n";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

HttpResponse HttpApi::Error(const Status& status) {
  StatusMapping m = MapStatus(status.code());
  if (m.http == 500) {
    // The details may be the store's; they go to the server's log, not to the client.
    spdlog::error("http: {}", status.ToString());
    return Error(500, m.code, "internal error (see the server log)");
  }
  return Error(m.http, m.code, status.message());
}

std::optional<Principal> HttpApi::Authorize(const HttpRequest& req, Permission permission,
                                            const std::string& method, HttpResponse* denied) {
  const std::string what = method + " (HTTPS)";
  auto principal = AuthenticateBearer(aggregator_, credentials_, req.peer,
                                      req.authorization ? &*req.authorization : nullptr, what,
                                      "send the header 'Authorization: Bearer TOKEN'");
  if (!principal.ok()) {
    const Status& s = principal.status();
    // An expired or revoked token is as good as none: 401, so clients ask for a new one.
    *denied = s.code() == Status::Code::kResourceExhausted
                  ? Error(s)
                  : Error(401, "UNAUTHENTICATED", s.message());
    if (denied->status == 401) denied->headers.emplace_back("WWW-Authenticate", "Bearer");
    return std::nullopt;
  }
  if (Status s = CheckRole(aggregator_, req.peer, *principal, permission, what); !s.ok()) {
    *denied = Error(403, "PERMISSION_DENIED", s.message());
    return std::nullopt;
  }
  return *principal;
}

HttpResponse HttpApi::Handle(const HttpRequest& req) {
  HttpResponse r;
  try {
    const std::string& target = req.target;
    size_t q = target.find('?');
    std::string path = target.substr(0, q);
    std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    if (path.empty() || path[0] != '/') {
      r = Error(400, "INVALID_ARGUMENT", "the request target must be a path");
    } else if (path.rfind("/api/", 0) == 0) {
      r = Api(req, path, query);
    } else if (path == "/metrics") {
      r = req.method == "GET" ? Metrics(req) : MethodNotAllowed("GET");
    } else if (const StaticFile* f = FindStatic(path)) {
      r = req.method == "GET" ? ServeStatic(*f, req) : MethodNotAllowed("GET");
    } else {
      r = Error(404, "NOT_FOUND", "no such path");
    }
  } catch (const std::exception& e) {
    spdlog::error("http: {} failed: {}", req.method, e.what());
    r = Error(500, "INTERNAL", "internal error (see the server log)");
  }
  AddCommonHeaders(&r);
  return r;
}

HttpResponse HttpApi::Api(const HttpRequest& req, const std::string& path,
                          const std::string& raw_query) {
  constexpr std::string_view kPrefix = "/api/v1/";
  if (path.compare(0, kPrefix.size(), kPrefix) != 0) {
    return Error(404, "NOT_FOUND", "no such API version: the API is under /api/v1/");
  }
  std::vector<std::string> seg = SplitPath(path.substr(kPrefix.size()));
  Query query;
  if (Status s = ParseQuery(raw_query, &query); !s.ok()) return Error(s);

  // The {id} segment of /devices/{id}..., decoded.
  std::string device_id;
  auto decode_id = [&](std::string raw) -> bool {
    if (!PercentDecode(raw, false, &device_id) || device_id.empty() || device_id.size() > 128) {
      return false;
    }
    for (unsigned char c : device_id) {
      if (c <= 0x20 || c >= 0x7f) return false;  // ids are printable ASCII (docs/protocol.md)
    }
    return true;
  };
  HttpResponse denied;
  auto authorize = [&](Permission p, const char* method) -> std::optional<Principal> {
    return Authorize(req, p, method, &denied);
  };
  const std::string& m = req.method;

  if (seg.size() == 1 && seg[0] == "devices") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadFleet, "ListDevices")) return denied;
    v1::ListDevicesRequest r;
    if (Status s = QueryInto(
            query, {"status", "failingCheck", "os", "tag", "notSeenSince", "limit", "pageToken"},
            &r);
        !s.ok()) {
      return Error(s);
    }
    return Reply(fleet_.ListDevices(r));
  }
  if (seg.size() == 2 && seg[0] == "devices") {
    for (const char* action : {":approve", ":revoke"}) {
      if (!EndsWith(seg[1], action)) continue;
      if (m != "POST") return MethodNotAllowed("POST");
      bool approve = std::string(action) == ":approve";
      if (!decode_id(seg[1].substr(0, seg[1].size() - std::string(action).size()))) {
        return Error(400, "INVALID_ARGUMENT", "malformed device id in the path");
      }
      auto principal =
          authorize(Permission::kManageDevices, approve ? "ApproveDevice" : "RevokeDevice");
      if (!principal) return denied;
      if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
      v1::DeviceActionRequest r;
      if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
      if (!r.device_id().empty() && r.device_id() != device_id) {
        return Error(400, "INVALID_ARGUMENT", "deviceId in the body differs from the path's");
      }
      r.set_device_id(device_id);
      return Reply(approve ? fleet_.ApproveDevice(r, principal->Actor())
                           : fleet_.RevokeDevice(r, principal->Actor()));
    }
    if (m != "GET") return MethodNotAllowed("GET");
    if (!decode_id(seg[1])) return Error(400, "INVALID_ARGUMENT", "malformed device id");
    if (!authorize(Permission::kReadFleet, "GetDevice")) return denied;
    v1::GetDeviceRequest r;
    if (Status s = QueryInto(query, {"historyLimit"}, &r); !s.ok()) return Error(s);
    r.set_device_id(device_id);
    return Reply(fleet_.GetDevice(r));
  }
  if (seg.size() == 3 && seg[0] == "devices" && seg[2] == "history") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!decode_id(seg[1])) return Error(400, "INVALID_ARGUMENT", "malformed device id");
    if (!authorize(Permission::kReadFleet, "DeviceHistory")) return denied;
    v1::DeviceHistoryRequest r;
    if (Status s = QueryInto(query, {"since", "until", "limit", "beforeSequence"}, &r); !s.ok()) {
      return Error(s);
    }
    r.set_device_id(device_id);
    return Reply(fleet_.DeviceHistory(r));
  }
  if (seg.size() == 3 && seg[0] == "devices" && seg[2] == "policy") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!decode_id(seg[1])) return Error(400, "INVALID_ARGUMENT", "malformed device id");
    if (!authorize(Permission::kReadFleet, "GetDevicePolicy")) return denied;
    v1::GetDevicePolicyRequest r;
    if (Status s = QueryInto(query, {}, &r); !s.ok()) return Error(s);
    r.set_device_id(device_id);
    return Reply(changes_.GetDevicePolicy(r));
  }
  if (seg.size() == 3 && seg[0] == "devices" && seg[2] == "tags") {
    if (m != "PUT") return MethodNotAllowed("PUT");
    if (!decode_id(seg[1])) return Error(400, "INVALID_ARGUMENT", "malformed device id");
    auto principal = authorize(Permission::kManageDevices, "SetDeviceTags");
    if (!principal) return denied;
    if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
    v1::SetDeviceTagsRequest r;
    if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
    if (!r.device_id().empty() && r.device_id() != device_id) {
      return Error(400, "INVALID_ARGUMENT", "deviceId in the body differs from the path's");
    }
    r.set_device_id(device_id);
    return Reply(fleet_.SetDeviceTags(r, principal->Actor()));
  }
  if (seg.size() == 1 && seg[0] == "summary") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadFleet, "Summary")) return denied;
    v1::SummaryRequest r;
    if (Status s = QueryInto(query, {}, &r); !s.ok()) return Error(s);
    return Reply(fleet_.Summary(r));
  }
  if (seg.size() == 1 && seg[0] == "alerts") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadFleet, "ListAlerts")) return denied;
    v1::ListAlertsRequest r;
    if (Status s = QueryInto(query, {"afterId", "limit", "deviceId"}, &r); !s.ok()) {
      return Error(s);
    }
    return Reply(fleet_.ListAlerts(r));
  }
  if (seg.size() == 1 && seg[0] == "audit") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadAudit, "ListAudit")) return denied;
    v1::ListAuditRequest r;
    if (Status s = QueryInto(query, {"afterId", "limit"}, &r); !s.ok()) return Error(s);
    return Reply(fleet_.ListAudit(r));
  }
  if (seg.size() == 1 && seg[0] == "stats") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadFleet, "ServerStats")) return denied;
    v1::ServerStatsRequest r;
    if (Status s = QueryInto(query, {}, &r); !s.ok()) return Error(s);
    return Json(fleet_.Stats());
  }
  if (!seg.empty() && seg[0] == "policy") return PolicyRoutes(req, seg, query);
  if (!seg.empty() && seg[0] == "exceptions") return ExceptionRoutes(req, seg, query);
  return Error(404, "NOT_FOUND", "no such API path");
}

// The policy as code (docs/policy.md): versions, change requests and their steps, rollback and
// diff. The permission of each route is its FleetService method's (services.cc).
HttpResponse HttpApi::PolicyRoutes(const HttpRequest& req, const std::vector<std::string>& seg,
                                   const Query& query) {
  HttpResponse denied;
  auto authorize = [&](Permission p, const char* method) -> std::optional<Principal> {
    return Authorize(req, p, method, &denied);
  };
  const std::string& m = req.method;

  if (seg.size() == 1) {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadFleet, "GetPolicy")) return denied;
    v1::GetPolicyRequest r;
    if (Status s = QueryInto(query, {"version"}, &r); !s.ok()) return Error(s);
    return Reply(changes_.GetPolicy(r));
  }
  if (seg.size() == 2 && seg[1] == "changes") {
    if (m == "GET") {
      if (!authorize(Permission::kReadFleet, "ListPolicyChanges")) return denied;
      v1::ListPolicyChangesRequest r;
      if (Status s = QueryInto(query, {"afterId", "limit"}, &r); !s.ok()) return Error(s);
      return Reply(changes_.ListChanges(r));
    }
    if (m != "POST") return MethodNotAllowed("GET, POST");
    auto principal = authorize(Permission::kProposeChange, "ProposePolicyChange");
    if (!principal) return denied;
    if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
    v1::ProposePolicyChangeRequest r;
    if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
    return Reply(changes_.Propose(r, principal->Actor()));
  }
  if (seg.size() == 2 && seg[1] == "rollback") {
    if (m != "POST") return MethodNotAllowed("POST");
    auto principal = authorize(Permission::kProposeChange, "RollbackPolicy");
    if (!principal) return denied;
    if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
    v1::RollbackPolicyRequest r;
    if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
    return Reply(changes_.Rollback(r, principal->Actor()));
  }
  if (seg.size() == 2 && seg[1] == "diff") {
    if (m != "GET") return MethodNotAllowed("GET");
    if (!authorize(Permission::kReadFleet, "DiffPolicyVersions")) return denied;
    v1::DiffPolicyVersionsRequest r;
    if (Status s =
            QueryInto(query, {"from", "to"}, &r, {{"from", "fromVersion"}, {"to", "toVersion"}});
        !s.ok()) {
      return Error(s);
    }
    if (r.from_version() == 0) {
      return Error(400, "INVALID_ARGUMENT",
                   "query parameter 'from' (a version number) is required");
    }
    return Reply(changes_.Diff(r));
  }
  if ((seg.size() != 3 && seg.size() != 4) || seg[1] != "changes") {
    return Error(404, "NOT_FOUND", "no such API path");
  }

  // /policy/changes/{id} and /policy/changes/{id}/ACTION.
  const std::string action = seg.size() == 4 ? seg[3] : "";
  const bool post = action == "approve" || action == "reject" || action == "apply";
  if (!post && action != "" && action != "preview" && action != "review") {
    return Error(404, "NOT_FOUND", "no such API path");
  }
  if (m != (post ? "POST" : "GET")) return MethodNotAllowed(post ? "POST" : "GET");
  uint64_t id = 0;
  if (!ParseIdSegment(seg[2], &id)) {
    return Error(400, "INVALID_ARGUMENT", "malformed change id in the path (a positive number)");
  }
  if (!post) {
    const char* method = action == "preview"  ? "PreviewPolicyChange"
                         : action == "review" ? "ReviewPolicyChange"
                                              : "GetPolicyChange";
    // Preview and review read every device's evidence: admin and approver only, as on gRPC.
    const Permission need = action.empty() ? Permission::kReadFleet : Permission::kReadAudit;
    if (!authorize(need, method)) return denied;
    v1::PolicyChangeRequest r;
    std::vector<std::string> allowed;
    if (action == "preview") allowed = {"deviceLimit"};
    if (Status s = QueryInto(query, allowed, &r); !s.ok()) return Error(s);
    r.set_change_id(id);
    if (action == "preview") return Reply(changes_.Preview(r));
    if (action == "review") return Reply(changes_.Review(r));
    return Reply(changes_.GetChange(r));
  }
  if (action == "apply") {
    auto principal = authorize(Permission::kProposeChange, "ApplyPolicyChange");
    if (!principal) return denied;
    if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
    v1::PolicyChangeRequest r;
    if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
    if (r.change_id() != 0 && r.change_id() != id) {
      return Error(400, "INVALID_ARGUMENT", "changeId in the body differs from the path's");
    }
    if (r.device_limit() != 0) {
      return Error(400, "INVALID_ARGUMENT", "deviceLimit is the preview's, not apply's");
    }
    r.set_change_id(id);
    return Reply(changes_.Apply(r, principal->Actor()));
  }
  const bool approve = action == "approve";
  auto principal = approve ? authorize(Permission::kApprove, "ApprovePolicyChange")
                           : authorize(Permission::kDecide, "RejectPolicyChange");
  if (!principal) return denied;
  if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
  v1::PolicyDecisionRequest r;
  if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
  if (r.change_id() != 0 && r.change_id() != id) {
    return Error(400, "INVALID_ARGUMENT", "changeId in the body differs from the path's");
  }
  r.set_change_id(id);
  return Reply(approve ? changes_.Approve(r, principal->Actor())
                       : changes_.Reject(r, principal->Actor()));
}

// Exceptions: request and list; approve, reject and revoke one.
HttpResponse HttpApi::ExceptionRoutes(const HttpRequest& req, const std::vector<std::string>& seg,
                                      const Query& query) {
  HttpResponse denied;
  auto authorize = [&](Permission p, const char* method) -> std::optional<Principal> {
    return Authorize(req, p, method, &denied);
  };
  const std::string& m = req.method;

  if (seg.size() == 1) {
    if (m == "GET") {
      if (!authorize(Permission::kReadFleet, "ListExceptions")) return denied;
      v1::ListExceptionsRequest r;
      if (Status s = QueryInto(query, {"state", "deviceId", "afterId", "limit"}, &r); !s.ok()) {
        return Error(s);
      }
      return Reply(changes_.ListExceptions(r));
    }
    if (m != "POST") return MethodNotAllowed("GET, POST");
    auto principal = authorize(Permission::kProposeChange, "RequestException");
    if (!principal) return denied;
    if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
    v1::RequestExceptionRequest r;
    if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
    return Reply(changes_.RequestException(r, principal->Actor()));
  }
  if (seg.size() != 3 || (seg[2] != "approve" && seg[2] != "reject" && seg[2] != "revoke")) {
    return Error(404, "NOT_FOUND", "no such API path");
  }
  if (m != "POST") return MethodNotAllowed("POST");
  uint64_t id = 0;
  if (!ParseIdSegment(seg[1], &id)) {
    return Error(400, "INVALID_ARGUMENT", "malformed exception id in the path (a positive number)");
  }
  const std::string& action = seg[2];
  std::optional<Principal> principal;
  if (action == "approve") {
    principal = authorize(Permission::kApprove, "ApproveException");
  } else {
    principal =
        authorize(Permission::kDecide, action == "reject" ? "RejectException" : "RevokeException");
  }
  if (!principal) return denied;
  if (!query.empty()) return Error(400, "INVALID_ARGUMENT", "this route takes no query");
  v1::ExceptionDecisionRequest r;
  if (Status s = BodyInto(req.body, &r); !s.ok()) return Error(s);
  if (r.exception_id() != 0 && r.exception_id() != id) {
    return Error(400, "INVALID_ARGUMENT", "exceptionId in the body differs from the path's");
  }
  r.set_exception_id(id);
  if (action == "approve") return Reply(changes_.ApproveException(r, principal->Actor()));
  if (action == "reject") return Reply(changes_.RejectException(r, principal->Actor()));
  return Reply(changes_.RevokeException(r, principal->Actor()));
}

HttpResponse HttpApi::Metrics(const HttpRequest& req) {
  HttpResponse denied;
  if (!Authorize(req, Permission::kReadFleet, "Metrics", &denied)) return denied;
  auto summary = fleet_.Summary(v1::SummaryRequest());
  if (!summary.ok()) return Error(summary.status());
  // Only the sinks: ask for the alerts after the last possible id.
  v1::ListAlertsRequest alerts_req;
  alerts_req.set_after_id(std::numeric_limits<uint64_t>::max());
  alerts_req.set_limit(1);
  auto alerts = fleet_.ListAlerts(alerts_req);
  std::vector<v1::SinkState> sinks;
  if (alerts.ok()) {
    sinks.assign(alerts->sinks().begin(), alerts->sinks().end());
  } else {
    spdlog::warn("metrics: alert sinks unavailable: {}", alerts.status().ToString());
  }
  Histogram::Snapshot duration = report_duration_.Read();
  ServerMetricsInput in;
  in.summary = &*summary;
  in.counters = counters_.Snapshot();
  in.report_duration = &duration;
  in.sinks = alerts.ok() ? &sinks : nullptr;
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = RenderServerMetrics(in);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// ---- HttpServer -----------------------------------------------------------------------------

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// What every connection shares; outlives the io_context (declared before it in Impl).
struct Shared {
  HttpApi& api;
  Counters& counters;
  HttpServerOptions options;
  std::atomic<size_t> connections{0};
};

std::string PeerName(const tcp::endpoint& ep) {
  const auto a = ep.address();
  if (a.is_v4()) return "ipv4:" + a.to_string() + ":" + std::to_string(ep.port());
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return "ipv4:" + asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string() + ":" +
           std::to_string(ep.port());
  }
  return "ipv6:[" + a.to_string() + "]:" + std::to_string(ep.port());
}

// One TLS connection: handshake, then requests one after another (keep-alive) until the peer
// closes, a limit is hit or the server stops. Every step runs on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ssl::context& tls, Shared& shared, std::string peer)
      : stream_(std::move(socket), tls), shared_(shared), peer_(std::move(peer)) {}
  ~Session() { shared_.connections.fetch_sub(1); }

  void Start() {
    beast::get_lowest_layer(stream_).expires_after(shared_.options.header_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              if (ec) return;  // port scanners, plaintext clients, timeouts
                              self->ReadHeader();
                            });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(shared_.options.max_header_bytes));
    parser_->body_limit(shared_.options.max_body_bytes);
    beast::get_lowest_layer(stream_).expires_after(shared_.options.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return Refuse(ec);
    beast::get_lowest_layer(stream_).expires_after(shared_.options.body_timeout);
    // curl and others wait (a second) for "100 Continue" before sending a larger body.
    const auto& header = parser_->get();
    if (auto it = header.find(http::field::expect);
        it != header.end() && beast::iequals(it->value(), "100-continue")) {
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      return http::async_write(stream_, *continue_,
                               [self = shared_from_this()](beast::error_code ec2, size_t) {
                                 if (ec2) return;
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec2, size_t) { self->OnRequest(ec2); });
  }

  // A request that cannot be read to its end: answer when there is something to say, then close.
  void Refuse(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      shared_.counters.Inc("http.rejected.too_large");
      return Send(HttpApi::Error(413, "PAYLOAD_TOO_LARGE",
                                 "the request body is larger than " +
                                     std::to_string(shared_.options.max_body_bytes) + " bytes"),
                  false, true);
    }
    if (ec == http::error::header_limit) {
      shared_.counters.Inc("http.rejected.header_too_large");
      return Send(HttpApi::Error(431, "HEADER_TOO_LARGE", "the request header is too large"), false,
                  true);
    }
    bool parse_error = ec.category() == http::make_error_code(http::error::bad_target).category();
    if (parse_error && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      shared_.counters.Inc("http.rejected.malformed");
      return Send(HttpApi::Error(400, "INVALID_ARGUMENT", "malformed HTTP request"), false, true);
    }
    Close();  // closed by the peer, timed out, or the server is stopping
  }

  void OnRequest(beast::error_code ec) {
    if (ec) return Refuse(ec);
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    if (auto it = msg.find(http::field::authorization); it != msg.end()) {
      req.authorization = std::string(it->value());
    }
    if (auto it = msg.find(http::field::if_none_match); it != msg.end()) {
      req.if_none_match = std::string(it->value());
    }
    req.body = std::move(msg.body());
    req.peer = peer_;
    bool keep_alive = msg.keep_alive();
    auto start = std::chrono::steady_clock::now();
    HttpResponse resp = shared_.api.Handle(req);
    // Path only: a query may hold search terms, and no header (the token) is ever logged.
    spdlog::debug("http {} {} {} -> {} in {} us", peer_, req.method,
                  Printable(req.target.substr(0, req.target.find('?')), 200), resp.status,
                  std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count());
    Send(std::move(resp), keep_alive);
  }

  // `drain`: the request was not read to its end; read (and drop) what the client still sends
  // before closing, or closing with unread data would reset the connection and the client might
  // lose the answer while it is still writing.
  void Send(HttpResponse resp, bool keep_alive, bool drain = false) {
    response_ = {};
    response_.result(static_cast<unsigned>(resp.status));
    response_.version(11);
    response_.set(http::field::server, "vigil-server");
    if (!resp.content_type.empty()) response_.set(http::field::content_type, resp.content_type);
    for (const auto& [name, value] : resp.headers) response_.set(name, value);
    response_.body() = std::move(resp.body);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(shared_.options.body_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this(), keep_alive, drain](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (keep_alive) return self->ReadHeader();
                        if (!drain) return self->Close();
                        beast::get_lowest_layer(self->stream_).expires_after(kDrainTime);
                        self->Drain();
                      });
  }

  static constexpr std::chrono::seconds kDrainTime{2};
  static constexpr size_t kMaxDrainBytes = 1 << 20;

  void Drain() {
    stream_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  Shared& shared_;
  const std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::array<char, 16384> drain_buffer_;
  size_t drained_ = 0;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(HttpApi& api, Counters& counters, const HttpServerOptions& options)
      : shared{api, counters, options} {}

  void Accept() {
    acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        // EMFILE and friends: keep accepting, the next attempt may succeed.
        spdlog::warn("http: accept: {}", ec.message());
        return Accept();
      }
      beast::error_code peer_ec;
      tcp::endpoint remote = socket.remote_endpoint(peer_ec);
      // Small TLS records (handshake, session tickets, a response) must not wait for the
      // client's delayed ACK: without this a new connection's first answer took ~40 ms.
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (shared.connections.fetch_add(1) >= shared.options.max_connections) {
        shared.connections.fetch_sub(1);
        shared.counters.Inc("http.rejected.connections");
        socket.close(peer_ec);
      } else {
        auto session = std::make_shared<Session>(
            std::move(socket), tls, shared, peer_ec ? std::string("unknown") : PeerName(remote));
        session->Start();
      }
      Accept();
    });
  }

  Shared shared;
  ssl::context tls{ssl::context::tls_server};
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  bool stopped = false;
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      const pki::KeyAndCert& server, HttpApi& api,
                                                      Counters& counters) {
  size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::InvalidArgument("--http-listen: expected HOST:PORT, got '" + options.listen +
                                   "'");
  }
  std::string host = options.listen.substr(0, colon);
  std::string port = options.listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto impl = std::make_unique<Impl>(api, counters, options);
  beast::error_code ec;
  // TLS 1.3 only, like the gRPC port; the server's own certificate and key.
  SSL_CTX* ctx = impl->tls.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return Status::Internal("cannot require TLS 1.3 on the HTTPS port");
  }
  impl->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_compression);
  impl->tls.use_certificate_chain(asio::buffer(server.cert_pem), ec);
  if (!ec) impl->tls.use_private_key(asio::buffer(server.key_pem), ssl::context::pem, ec);
  if (ec) return Status::InvalidArgument("the server's certificate or key: " + ec.message());

  tcp::resolver resolver(impl->io);
  auto endpoints =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return Status::InvalidArgument("--http-listen " + options.listen + ": " +
                                   (ec ? ec.message() : "no address"));
  }
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  auto& acc = impl->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("cannot listen on " + options.listen + ": " + ec.message());
  uint16_t bound_port = acc.local_endpoint(ec).port();

  impl->Accept();
  int threads = std::max(1, options.threads);
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([io = &impl->io] {
      for (;;) {
        try {
          io->run();
          return;
        } catch (const std::exception& e) {
          // A handler threw (none should): log it and keep the port serving.
          spdlog::error("http: {}", e.what());
        }
      }
    });
  }
  std::unique_ptr<HttpServer> out(new HttpServer(std::move(impl)));
  out->port_ = bound_port;
  out->bound_ = options.listen.substr(0, colon) + ":" + std::to_string(bound_port);
  return out;
}

void HttpServer::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  // Requests being handled finish; the rest (open connections, handshakes) are dropped with the
  // io_context when the HttpServer is destroyed: the API is request/response, clients retry.
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace vigil::server

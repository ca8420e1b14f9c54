#include "server/store_sql.h"

#include <map>

namespace vigil::server::store_sql {

std::string StatusFilter(v1::DeviceStatus status, char p) {
  // None of the sticky states applies: the verdict, UNKNOWN or STALE decide.
  const std::string clean = " AND revoked_at_ms=0 AND tampered=0 AND pending=0";
  const std::string stale_before = std::string(1, p) + "2";
  switch (status) {
    case v1::DEVICE_STATUS_UNSPECIFIED:
      return "";
    case v1::REVOKED:
      return " AND revoked_at_ms>0";
    case v1::TAMPERED:
      return " AND revoked_at_ms=0 AND tampered=1";
    case v1::PENDING:
      return " AND revoked_at_ms=0 AND tampered=0 AND pending=1";
    case v1::STALE:
      return clean + " AND last_seen_ms>0 AND last_seen_ms<" + stale_before;
    case v1::UNKNOWN:
      return clean + " AND last_seen_ms=0";
    default:
      return clean + " AND status=" + p + "3 AND last_seen_ms>=" + stale_before;
  }
}

std::string Bucket(const std::string& row) {
  const std::string r = row.empty() ? "" : row + ".";
  return "(CASE WHEN " + r + "revoked_at_ms>0 THEN " + std::to_string(v1::REVOKED) + " WHEN " + r +
         "tampered=1 THEN " + std::to_string(v1::TAMPERED) + " WHEN " + r + "pending=1 THEN " +
         std::to_string(v1::PENDING) + " WHEN " + r + "last_seen_ms=0 THEN " +
         std::to_string(v1::UNKNOWN) + " ELSE " + r + "status END)";
}

std::string CountsQuery(char p) {
  return std::string("SELECT bucket, n FROM status_counts WHERE n<>0 UNION ALL SELECT ") +
         std::to_string(kStaleOffset) +
         " + status, COUNT(*) FROM devices WHERE revoked_at_ms=0 AND tampered=0 AND pending=0 "
         "AND last_seen_ms>0 AND last_seen_ms<" +
         p + "1 GROUP BY status";
}

std::vector<std::pair<v1::DeviceStatus, uint64_t>> CountsFromRows(
    const std::vector<std::pair<int64_t, int64_t>>& rows) {
  std::map<int64_t, int64_t> by;
  for (const auto& [bucket, n] : rows) {
    if (bucket >= kStaleOffset) {
      by[bucket - kStaleOffset] -= n;  // counted under its verdict, but it is stale
      by[v1::STALE] += n;
    } else {
      by[bucket] += n;
    }
  }
  std::vector<std::pair<v1::DeviceStatus, uint64_t>> out;
  for (const auto& [bucket, n] : by) {
    if (n > 0) out.emplace_back(static_cast<v1::DeviceStatus>(bucket), static_cast<uint64_t>(n));
  }
  return out;
}

std::string JoinChecks(const std::vector<std::string>& checks) {
  std::string s = ",";
  for (const auto& c : checks) s += c + ",";
  return s;
}

std::vector<std::string> SplitChecks(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string HexPrefix(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string AlertState() {
  return "(CASE WHEN NEW.revoked_at_ms<>0 THEN 8 WHEN NEW.tampered<>0 THEN 5 "
         "WHEN NEW.pending<>0 THEN OLD.alert_state "
         "WHEN OLD.alert_state=4 AND NEW.last_seen_ms<=OLD.last_seen_ms THEN 4 "
         "WHEN NEW.status IN " +
         std::string(kVerdictAlertStates) + " THEN NEW.status ELSE OLD.alert_state END)";
}

std::string AlertRaised(const std::string& state) {
  return "(" + state + " IN (2, 5) OR (" + state + "=1 AND OLD.alert_state IN (2, 4, 5)))";
}

std::string AlertKind(const std::string& state) {
  return "(CASE " + state +
         " WHEN 2 THEN 'device.non_compliant' WHEN 5 THEN 'device.tampered' "
         "ELSE 'device.resolved' END)";
}

std::string AlertReason(const std::string& state) {
  return "(CASE " + state + " WHEN 5 THEN NEW.tamper_reason ELSE NEW.status_reason END)";
}

std::string AlertAt(const std::string& now_ms_sql) {
  return "(CASE WHEN NEW.last_seen_ms>OLD.last_seen_ms THEN NEW.last_seen_ms ELSE " + now_ms_sql +
         " END)";
}

std::string ChangeBody(const v1::PolicyChange& change) {
  v1::PolicyChange body = change;
  body.clear_id();
  return body.SerializeAsString();
}

std::string ExceptionBody(const v1::PolicyException& exception) {
  v1::PolicyException body = exception;
  body.clear_id();
  return body.SerializeAsString();
}

Result<v1::PolicyChange> ChangeFromRow(int64_t id, int64_t state, const std::string& body) {
  v1::PolicyChange c;
  if (!c.ParseFromString(body)) {
    return Status::IoError("stored policy change " + std::to_string(id) + " does not parse");
  }
  c.set_id(static_cast<uint64_t>(id));
  c.set_state(static_cast<v1::PolicyChangeState>(state));
  return c;
}

Result<v1::PolicyException> ExceptionFromRow(int64_t id, int64_t state, const std::string& body) {
  v1::PolicyException e;
  if (!e.ParseFromString(body)) {
    return Status::IoError("stored exception " + std::to_string(id) + " does not parse");
  }
  e.set_id(static_cast<uint64_t>(id));
  e.set_state(static_cast<v1::ExceptionState>(state));
  return e;
}

int64_t TimestampMs(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

Status StateMoved(const std::string& what, uint64_t id, std::optional<std::string> state,
                  const std::string& from) {
  if (!state) return Status::NotFound("no " + what + " " + std::to_string(id));
  return Status::FailedPrecondition(what + " " + std::to_string(id) + " is " + *state + ", not " +
                                    from + " (changed meanwhile)");
}

Status NextVersion(uint64_t number, uint64_t current) {
  if (number == current + 1) return Status::Ok();
  if (number == 0) return Status::FailedPrecondition("policy versions are numbered from 1");
  if (number <= current) {
    return Status::FailedPrecondition("policy version " + std::to_string(number) +
                                      " was applied meanwhile (the current version is " +
                                      std::to_string(current) + ")");
  }
  return Status::FailedPrecondition("policy version " + std::to_string(number) +
                                    " does not follow the current version " +
                                    std::to_string(current));
}

bool IsValidTag(const std::string& tag) {
  if (tag.empty() || tag.size() > 64) return false;
  for (char c : tag) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '=' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace vigil::server::store_sql

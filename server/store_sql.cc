#include "server/store_sql.h"

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

}  // namespace vigil::server::store_sql

#include "server/vigilctl_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <utility>

#include "common/files.h"
#include "proto/json.h"
#include "proto/signing.h"

namespace vigil::ctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using google::protobuf::RepeatedPtrField;

std::string Hex2(unsigned v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[(v >> 4) & 0xf], kDigits[v & 0xf]};
}

// Decodes one UTF-8 sequence at s[i]; returns its length, 0 when invalid.
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t c = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
  for (size_t k = 1; k < len; ++k) {
    auto cb = static_cast<unsigned char>(s[i + k]);
    if ((cb >> 6) != 0x2) return 0;
    c = (c << 6) | (cb & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kMin[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  *cp = c;
  return len;
}

bool IsFormatting(uint32_t c) {
  return (c >= 0x80 && c <= 0x9f) || c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
         (c >= 0x2066 && c <= 0x2069);
}

size_t DisplayWidth(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

std::string Join(const RepeatedPtrField<std::string>& v, Style style) {
  std::string out;
  const char* sep = style == Style::kTable ? "," : ";";
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out.empty() && style == Style::kTable ? "-" : out;
}

std::string When(const google::protobuf::Timestamp& t, Style style, const char* none = "-") {
  if (style == Style::kCsv) return FormatTimeExact(t);
  std::string s = FormatTime(t);
  return s.empty() ? none : s;
}

std::string Or(const std::string& s, Style style) {
  return s.empty() && style == Style::kTable ? "-" : s;
}

std::string StatusName(v1::DeviceStatus s) {
  return s == v1::DEVICE_STATUS_UNSPECIFIED ? "" : v1::DeviceStatus_Name(s);
}

std::string CheckStatusName(v1::CheckStatus s) {
  return s == v1::CHECK_STATUS_UNSPECIFIED ? "" : v1::CheckStatus_Name(s);
}

// A JSON-style quoted string: shows empty values and surrounding spaces in evidence.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool IsProvenance(const google::protobuf::Descriptor* d) {
  return d->full_name() == "vigil.v1.Provenance";
}

bool IsFact(const google::protobuf::Descriptor* d) {
  const FieldDescriptor* from = d->FindFieldByName("from");
  return d->field_count() == 2 && d->FindFieldByName("value") != nullptr && from != nullptr &&
         from->message_type() != nullptr && IsProvenance(from->message_type());
}

std::string ProvenanceText(const v1::Provenance& p) {
  std::vector<std::string> parts;
  if (!p.source().empty()) {
    parts.push_back(p.source() + (p.line() ? ":" + std::to_string(p.line()) : ""));
  }
  if (!p.key().empty()) parts.push_back("key " + p.key());
  if (!p.raw().empty()) parts.push_back("raw " + Quoted(p.raw()));
  if (p.locked()) parts.push_back("locked");
  if (p.user_can_override()) parts.push_back("user can override");
  std::string out;
  for (const auto& s : parts) out += (out.empty() ? "" : ", ") + s;
  return "[" + out + "]";
}

std::string ProvenanceOf(const Message& m) {
  v1::Provenance p;
  p.CopyFrom(m);
  return ProvenanceText(p);
}

std::string ScalarText(const Message& m, const FieldDescriptor* f, int index) {
  const Reflection* r = m.GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return std::to_string(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return std::to_string(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return std::string((rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name());
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FieldDescriptor::TYPE_BYTES) return signing::Hex(s);
      return s;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "";
}

void Render(const Message& m, size_t indent, std::vector<std::string>* out);

// A fact on one line: "name: value  [provenance]".
std::string FactLine(const std::string& name, const Message& fact) {
  const auto* d = fact.GetDescriptor();
  const FieldDescriptor* value = d->FindFieldByName("value");
  const FieldDescriptor* from = d->FindFieldByName("from");
  std::string v = ScalarText(fact, value, 0);
  if (value->cpp_type() == FieldDescriptor::CPPTYPE_STRING) v = Quoted(v);
  std::string line = name + ": " + v;
  if (fact.GetReflection()->HasField(fact, from)) {
    line += "  " + ProvenanceOf(fact.GetReflection()->GetMessage(fact, from));
  }
  return line;
}

void RenderField(const Message& m, const FieldDescriptor* f, size_t indent,
                 std::vector<std::string>* out) {
  const Reflection* r = m.GetReflection();
  const std::string pad(indent, ' ');
  const std::string name(f->name());
  if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
    if (!f->is_repeated()) {
      out->push_back(pad + name + ": " + ScalarText(m, f, 0));
      return;
    }
    int n = r->FieldSize(m, f);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      // Paths and sentences read best one per line.
      out->push_back(pad + name + ":");
      for (int i = 0; i < n; ++i) out->push_back(pad + "  - " + ScalarText(m, f, i));
      return;
    }
    std::string joined;
    for (int i = 0; i < n; ++i) joined += (i ? ", " : "") + ScalarText(m, f, i);
    out->push_back(pad + name + ": " + joined);
    return;
  }
  const auto* type = f->message_type();
  if (!f->is_repeated()) {
    const Message& sub = r->GetMessage(m, f);
    if (IsProvenance(type)) {
      out->push_back(pad + name + ": " + ProvenanceOf(sub));
    } else if (IsFact(type)) {
      out->push_back(pad + FactLine(name, sub));
    } else {
      out->push_back(pad + name + ":");
      Render(sub, indent + 2, out);
    }
    return;
  }
  out->push_back(pad + name + ":");
  for (int i = 0; i < r->FieldSize(m, f); ++i) {
    std::vector<std::string> item;
    Render(r->GetRepeatedMessage(m, f, i), indent + 4, &item);
    if (item.empty()) item.push_back(std::string(indent + 4, ' ') + "{}");
    item[0][indent + 2] = '-';  // YAML-like list item marker
    out->insert(out->end(), item.begin(), item.end());
  }
}

void Render(const Message& m, size_t indent, std::vector<std::string>* out) {
  std::vector<const FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    // The Evidence oneof only says which check this is: show its content directly.
    if (f->containing_oneof() != nullptr && f->containing_oneof()->name() == "kind" &&
        m.GetDescriptor()->full_name() == "vigil.v1.Evidence") {
      Render(m.GetReflection()->GetMessage(m, f), indent, out);
      continue;
    }
    RenderField(m, f, indent, out);
  }
}

class StdoutWriter final : public Output {
 public:
  Status Write(std::string_view data) override {
    std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
    return std::cout ? Status::Ok() : Status::IoError("standard output: write failed");
  }
  Status Commit() override {
    std::cout.flush();
    return std::cout ? Status::Ok() : Status::IoError("standard output: write failed");
  }
};

class AtomicFileWriter final : public Output {
 public:
  AtomicFileWriter(std::string path, std::string dir, std::string tmp, int fd)
      : path_(std::move(path)), dir_(std::move(dir)), tmp_(std::move(tmp)), fd_(fd) {}
  ~AtomicFileWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  Status Write(std::string_view data) override {
    buf_.append(data);
    return buf_.size() >= (1u << 16) ? Flush() : Status::Ok();
  }

  Status Commit() override {
    if (auto st = Flush(); !st.ok()) return st;
    if (::fsync(fd_) != 0) return Status::FromErrno(errno, "fsync " + tmp_);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Status::FromErrno(errno, "close " + tmp_);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return Status::FromErrno(errno, "rename to " + path_);
    }
    committed_ = true;
    return SyncDir(dir_);
  }

 private:
  Status Flush() {
    size_t off = 0;
    while (off < buf_.size()) {
      ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(errno, "write " + tmp_);
      off += static_cast<size_t>(n);
    }
    buf_.clear();
    return Status::Ok();
  }

  std::string path_, dir_, tmp_;
  int fd_;
  bool committed_ = false;
  std::string buf_;
};

}  // namespace

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CsvRecord(const Row& row) {
  std::string out;
  for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + CsvField(row[i]);
  return out + "\r\n";
}

std::string FormatCsv(const Table& table) {
  std::string out = CsvRecord(table.header);
  for (const auto& r : table.rows) out += CsvRecord(r);
  return out;
}

std::string Sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7f) {
      out += b == '\n' ? "\\n" : b == '\t' ? "\\t" : b == '\r' ? "\\r" : "\\x" + Hex2(b);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t len = DecodeUtf8(s, i, &cp);
    if (len == 0) {
      out += "\\x" + Hex2(b);
      ++i;
      continue;
    }
    if (IsFormatting(cp)) {
      out += "\\u" + Hex2(cp >> 8) + Hex2(cp & 0xff);
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

std::string FormatTable(const Table& table) {
  std::vector<Row> rows;
  rows.reserve(table.rows.size() + 1);
  rows.push_back(table.header);
  rows.insert(rows.end(), table.rows.begin(), table.rows.end());
  std::vector<size_t> width;
  for (auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) {
      r[i] = Sanitize(r[i]);
      width[i] = std::max(width[i], DisplayWidth(r[i]));
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - DisplayWidth(r[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  auto secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return "";
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatTimeExact(const google::protobuf::Timestamp& t) {
  std::string s = FormatTime(t);
  if (s.empty() || t.nanos() <= 0 || t.nanos() >= 1000000000) return s;
  char frac[16];
  int32_t n = t.nanos();
  if (n % 1000000 == 0) {
    std::snprintf(frac, sizeof frac, ".%03d", n / 1000000);
  } else if (n % 1000 == 0) {
    std::snprintf(frac, sizeof frac, ".%06d", n / 1000);
  } else {
    std::snprintf(frac, sizeof frac, ".%09d", n);
  }
  return s.substr(0, s.size() - 1) + frac + "Z";
}

Table DevicesTable(const RepeatedPtrField<v1::DeviceSummary>& devices, Style style) {
  Table t;
  if (style == Style::kTable) {
    t.header = {"DEVICE", "HOSTNAME", "STATUS", "FAILING", "LAST-SEEN", "OS", "TAGS"};
    for (const auto& d : devices) {
      t.rows.push_back({d.device_id(), Or(d.hostname(), style), StatusName(d.status()),
                        Join(d.failing_checks(), style), When(d.last_seen(), style, "never"),
                        Or(d.os_name().empty() ? d.os() : d.os_name(), style),
                        Join(d.tags(), style)});
    }
    return t;
  }
  t.header = {"device_id",
              "hostname",
              "status",
              "status_reason",
              "failing_checks",
              "last_seen",
              "last_sequence",
              "enrolled_at",
              "os",
              "os_name",
              "tags"};
  for (const auto& d : devices) {
    t.rows.push_back({d.device_id(), d.hostname(), StatusName(d.status()), d.status_reason(),
                      Join(d.failing_checks(), style), When(d.last_seen(), style),
                      std::to_string(d.last_sequence()), When(d.enrolled_at(), style), d.os(),
                      d.os_name(), Join(d.tags(), style)});
  }
  return t;
}

Table HistoryTable(const RepeatedPtrField<v1::HistoryEntry>& entries, Style style) {
  Table t;
  t.header = style == Style::kTable
                 ? Row{"SEQ", "ISSUED", "RECEIVED", "STATUS", "FAILING"}
                 : Row{"sequence", "issued_at", "received_at", "status", "failing_checks"};
  for (const auto& h : entries) {
    t.rows.push_back({std::to_string(h.sequence()), When(h.issued_at(), style),
                      When(h.received_at(), style), StatusName(h.status()),
                      Join(h.failing_checks(), style)});
  }
  return t;
}

Table AlertsTable(const RepeatedPtrField<v1::Alert>& alerts, Style style) {
  Table t;
  if (style == Style::kTable) {
    t.header = {"ID",     "AT",       "KIND",    "DEVICE", "HOSTNAME",
                "STATUS", "PREVIOUS", "FAILING", "REASON"};
  } else {
    t.header = {"id",
                "at",
                "kind",
                "device_id",
                "hostname",
                "status",
                "previous_status",
                "failing_checks",
                "reason",
                "idempotency_key"};
  }
  for (const auto& a : alerts) {
    Row r = {std::to_string(a.id()),
             When(a.at(), style),
             a.kind(),
             Or(a.device_id(), style),
             Or(a.hostname(), style),
             Or(StatusName(a.status()), style),
             Or(StatusName(a.previous_status()), style),
             Join(a.failing_checks(), style),
             Or(a.reason(), style)};
    if (style == Style::kCsv) r.push_back(a.idempotency_key());
    t.rows.push_back(std::move(r));
  }
  return t;
}

Table SinksTable(const RepeatedPtrField<v1::SinkState>& sinks) {
  Table t;
  t.header = {"SINK",   "TYPE",     "DELIVERED",    "PENDING",
              "FAILED", "ATTEMPTS", "NEXT-ATTEMPT", "LAST-ERROR"};
  for (const auto& s : sinks) {
    t.rows.push_back({s.name(), s.type(), std::to_string(s.delivered_id()),
                      std::to_string(s.pending()), std::to_string(s.failed()),
                      std::to_string(s.attempts()), When(s.next_attempt(), Style::kTable),
                      Or(s.last_error(), Style::kTable)});
  }
  return t;
}

Table AuditTable(const std::vector<v1::AuditEntry>& entries, Style style) {
  Table t;
  t.header = style == Style::kTable ? Row{"ID", "TIME", "ACTOR", "ACTION", "TARGET", "OK", "DETAIL"}
                                    : Row{"id",      "at",     "actor",     "action", "target",
                                          "success", "detail", "prev_hash", "hash"};
  for (const auto& e : entries) {
    google::protobuf::Timestamp at;
    int64_t ms = e.at_ms();
    at.set_seconds(ms / 1000);
    at.set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
    if (style == Style::kTable) {
      t.rows.push_back({std::to_string(e.id()), When(at, style), e.actor(), e.action(),
                        Or(e.target(), style), e.success() ? "yes" : "NO", e.detail()});
    } else {
      t.rows.push_back({std::to_string(e.id()), When(at, style), e.actor(), e.action(), e.target(),
                        e.success() ? "true" : "false", e.detail(), signing::Hex(e.prev_hash()),
                        signing::Hex(e.hash())});
    }
  }
  return t;
}

Table SummaryTable(const v1::SummaryResponse& resp, Style style) {
  Table t;
  t.header = style == Style::kTable ? Row{"STATUS", "DEVICES"} : Row{"status", "devices"};
  for (const auto& c : resp.by_status()) {
    t.rows.push_back({StatusName(c.status()), std::to_string(c.count())});
  }
  t.rows.push_back({"TOTAL", std::to_string(resp.total())});
  return t;
}

Table StatsTable(const v1::ServerStatsResponse& resp, Style style) {
  Table t;
  t.header = style == Style::kTable ? Row{"COUNTER", "VALUE"} : Row{"counter", "value"};
  for (const auto& c : resp.counters()) t.rows.push_back({c.name(), std::to_string(c.value())});
  return t;
}

Row ExportCsvHeader() {
  return {"device_id", "hostname",     "sequence", "issued_at", "received_at", "device_status",
          "check",     "check_status", "reason",   "evidence",  "digest"};
}

std::vector<Row> ExportCsvRows(const v1::ExportRecord& rec) {
  const Row base = {rec.device().device_id(),           rec.device().hostname(),
                    std::to_string(rec.sequence()),     FormatTimeExact(rec.issued_at()),
                    FormatTimeExact(rec.received_at()), StatusName(rec.status())};
  const std::string digest = signing::Hex(rec.digest());
  std::vector<Row> rows;
  for (const auto& c : rec.checks()) {
    Row r = base;
    r.insert(r.end(), {c.check(), CheckStatusName(c.status()), c.reason(),
                       c.has_evidence() ? ToJson(c.evidence(), /*pretty=*/false) : "", digest});
    rows.push_back(std::move(r));
  }
  if (rows.empty()) {
    // An attestation without checks still appears in the report.
    Row r = base;
    r.insert(r.end(), {"", "", "", "", digest});
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<std::string> EvidenceLines(const Message& msg) {
  std::vector<std::string> out;
  Render(msg, 0, &out);
  return out;
}

std::string DeviceDetail(const v1::GetDeviceResponse& resp) {
  const auto& d = resp.device();
  const auto& p = resp.platform();
  std::vector<std::string> lines;
  std::string status = StatusName(d.status());
  if (!d.status_reason().empty()) status += " (" + d.status_reason() + ")";
  std::string os = p.os_name().empty() ? d.os_name() : p.os_name();
  if (!p.kernel().empty())
    os += " (kernel " + p.kernel() + (p.arch().empty() ? "" : ", " + p.arch()) + ")";
  lines.push_back("device    " + d.device_id());
  lines.push_back("hostname  " + Or(d.hostname(), Style::kTable));
  lines.push_back("status    " + status);
  lines.push_back("failing   " + Join(d.failing_checks(), Style::kTable));
  lines.push_back("os        " + Or(os, Style::kTable));
  lines.push_back("last seen " + When(d.last_seen(), Style::kTable, "never") + " (sequence " +
                  std::to_string(d.last_sequence()) + ")");
  lines.push_back("enrolled  " + When(d.enrolled_at(), Style::kTable));
  lines.push_back("tags      " + Join(d.tags(), Style::kTable));
  lines.push_back("policy    " + Or(resp.policy_version(), Style::kTable));
  if (resp.has_agent_health()) {
    const auto& h = resp.agent_health();
    lines.push_back("agent     " +
                    std::string(resp.agent_problems().empty() ? "healthy" : "NEEDS ATTENTION") +
                    "; outbox " + std::to_string(h.outbox_depth()) + " queued, " +
                    std::to_string(h.outbox_dropped()) + " dropped while offline");
    google::protobuf::Timestamp complete;
    complete.set_seconds(h.last_complete_collection_ms() / 1000);
    lines.push_back("          last collection with evidence for every check: " +
                    When(complete, Style::kTable, "never"));
    for (const auto& problem : resp.agent_problems()) {
      lines.push_back("          " + Sanitize(problem));
    }
  }
  lines.push_back("");
  lines.push_back("CHECKS");
  if (resp.checks_size() == 0) lines.push_back("  (no report yet)");
  size_t width = 0;
  for (const auto& c : resp.checks()) width = std::max(width, c.check().size());
  for (const auto& c : resp.checks()) {
    std::string name = c.check();
    name.resize(width, ' ');
    std::string st = CheckStatusName(c.status());
    st.resize(std::max<size_t>(st.size(), 14), ' ');
    lines.push_back("  " + name + "  " + st + " " + c.reason());
    if (c.has_evidence()) {
      lines.push_back("    evidence:");
      for (const auto& l : EvidenceLines(c.evidence())) lines.push_back("      " + l);
    }
  }
  std::string out;
  for (const auto& l : lines) {
    std::string s = Sanitize(l);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out += s + "\n";
  }
  if (resp.history_size() > 0) {
    out += "\nHISTORY (newest first)\n";
    Table h = HistoryTable(resp.history(), Style::kTable);
    h.header[0] = "  " + h.header[0];
    for (auto& r : h.rows) r[0] = "  " + r[0];
    out += FormatTable(h);
  }
  if (resp.events_size() > 0) {
    out += "\nEVENTS (newest first)\n";
    Table e;
    e.header = {"  AT", "KIND", "DETAIL"};
    for (const auto& ev : resp.events()) {
      e.rows.push_back({"  " + When(ev.at(), Style::kTable), ev.kind(), ev.detail()});
    }
    out += FormatTable(e);
  }
  return out;
}

// ---- policy changes and exceptions ----------------------------------------------------------

namespace {

// Sanitized lines without trailing spaces, each ended by a newline.
std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    std::string s = Sanitize(l);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out += s + "\n";
  }
  return out;
}

// "key  value" lines, keys padded to the widest; pairs with an empty value are left out.
std::vector<std::string> KeyValues(const std::vector<std::pair<std::string, std::string>>& kv) {
  size_t width = 0;
  for (const auto& [k, v] : kv) {
    if (!v.empty()) width = std::max(width, k.size());
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : kv) {
    if (v.empty()) continue;
    std::string key = k;
    key.resize(width, ' ');
    out.push_back(key + "  " + v);
  }
  return out;
}

// "token:alice (admin) at 2026-12-01T10:00:00Z"; "" when neither is known.
std::string ByAt(const std::string& by, const google::protobuf::Timestamp& at) {
  std::string when = FormatTime(at);
  if (by.empty()) return when;
  return when.empty() ? by : by + " at " + when;
}

std::string Num(uint64_t n) { return std::to_string(n); }
std::string NumOr(uint64_t n, Style style) {
  return n == 0 ? (style == Style::kTable ? "-" : "") : std::to_string(n);
}

std::string Signed(int64_t n) { return n > 0 ? "+" + std::to_string(n) : std::to_string(n); }

// Pretty JSON of a message, one string per line.
std::vector<std::string> JsonLines(const Message& msg) {
  std::vector<std::string> out;
  std::string json = ToJson(msg, /*pretty=*/true);
  size_t at = 0;
  while (at < json.size()) {
    size_t nl = json.find('\n', at);
    if (nl == std::string::npos) nl = json.size();
    out.push_back(json.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

std::string DiffHeading(uint64_t base) {
  return base ? "DIFF (from version " + std::to_string(base) + ")" : "DIFF";
}

std::vector<std::string> Indented(const RepeatedPtrField<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back("  " + l);
  if (out.empty()) out.push_back("  (no differences)");
  return out;
}

std::string KindText(const v1::PolicyChange& c) {
  std::string kind = PolicyChangeKindName(c.kind());
  if (c.kind() == v1::ROLLBACK && c.rollback_to() != 0) {
    kind += " to version " + std::to_string(c.rollback_to());
  }
  return kind;
}

std::vector<std::pair<std::string, std::string>> ChangeHeader(const v1::PolicyChange& c) {
  std::string decided = ByAt(c.decided_by(), c.decided_at());
  std::string applied = ByAt(c.applied_by(), c.applied_at());
  if (!applied.empty() && c.state() == v1::APPLIED) {
    applied += " (" + std::to_string(c.devices_changed()) + " devices changed status)";
  }
  return {
      {"change", std::to_string(c.id())},
      {"kind", KindText(c)},
      {"state", PolicyChangeStateName(c.state())},
      {"version", c.version() ? std::to_string(c.version()) : ""},
      {"proposed", ByAt(c.proposed_by(), c.proposed_at())},
      {c.state() == v1::REJECTED ? "rejected" : "decided", decided},
      {"applied", applied},
  };
}

bool HasSnapshot(const v1::ComplianceSnapshot& s) {
  return s.total() != 0 || s.by_status_size() != 0 || s.by_check_size() != 0 || s.has_at();
}

}  // namespace

std::string PolicyChangeStateName(v1::PolicyChangeState s) {
  return s == v1::POLICY_CHANGE_STATE_UNSPECIFIED ? "" : v1::PolicyChangeState_Name(s);
}

std::string PolicyChangeKindName(v1::PolicyChangeKind k) {
  return k == v1::POLICY_CHANGE_KIND_UNSPECIFIED ? "" : v1::PolicyChangeKind_Name(k);
}

std::string ExceptionStateName(v1::ExceptionState s) {
  if (s == v1::EXCEPTION_STATE_UNSPECIFIED) return "";
  std::string name = v1::ExceptionState_Name(s);
  constexpr std::string_view kPrefix = "EXCEPTION_";
  return name.rfind(kPrefix, 0) == 0 ? name.substr(kPrefix.size()) : name;
}

std::string PolicyVersionText(const v1::PolicyVersionInfo& info) {
  std::vector<std::string> lines = KeyValues({
      {"version", std::to_string(info.version())},
      {"change", info.change_id() ? std::to_string(info.change_id()) : "-"},
      {"applied by", Or(info.applied_by(), Style::kTable)},
      {"applied at", When(info.applied_at(), Style::kTable)},
      {"set", info.set_version()},
  });
  lines.push_back("");
  for (auto& l : JsonLines(info.policy_set())) lines.push_back(std::move(l));
  return Lines(lines);
}

std::string DevicePolicyText(const v1::DevicePolicyResponse& resp) {
  std::string tags;
  for (const auto& t : resp.tags()) tags += (tags.empty() ? "" : ",") + t;
  std::string applied;
  for (const auto& o : resp.applied_overrides()) applied += (applied.empty() ? "" : ",") + o;
  std::vector<std::string> lines = KeyValues({
      {"device", resp.device_id()},
      {"os", Or(resp.os(), Style::kTable)},
      {"tags", tags.empty() ? "-" : tags},
      {"version", std::to_string(resp.version())},
      {"policy", Or(resp.policy().version(), Style::kTable)},
      {"overrides", applied.empty() ? "- (the default policy only)" : applied},
  });
  if (!resp.error().empty()) {
    lines.push_back("");
    lines.push_back("CONFLICT: " + resp.error());
    lines.push_back(
        "  (the overrides conflict: this device's checks are ERROR until the set is "
        "fixed)");
  }
  lines.push_back("");
  lines.push_back("EFFECTIVE POLICY");
  for (auto& l : JsonLines(resp.policy())) lines.push_back(std::move(l));
  lines.push_back("");
  if (resp.origins_size() == 0) {
    lines.push_back("ORIGINS: every value comes from the default policy");
  } else {
    lines.push_back("ORIGINS (every value not listed comes from the default policy)");
    size_t width = 0;
    for (const auto& o : resp.origins()) width = std::max(width, o.path().size());
    for (const auto& o : resp.origins()) {
      std::string path = o.path();
      path.resize(width, ' ');
      lines.push_back("  " + path + "  <- " + o.override());
    }
  }
  std::string out = Lines(lines) + "\n";
  if (resp.exceptions_size() == 0) {
    out += "EXCEPTIONS: none active\n";
  } else {
    out += "EXCEPTIONS (active)\n" + FormatTable(ExceptionsTable(resp.exceptions(), Style::kTable));
  }
  return out;
}

std::string ProposedText(const v1::PolicyChange& c) {
  std::vector<std::string> lines;
  lines.push_back("proposed change " + std::to_string(c.id()) + " (" +
                  PolicyChangeStateName(c.state()) + ")" +
                  (c.set_version().empty() ? "" : ", set " + c.set_version()) +
                  (c.base_version() ? ", on version " + std::to_string(c.base_version()) : ""));
  lines.push_back("");
  lines.push_back(DiffHeading(c.base_version()));
  for (auto& l : Indented(c.diff())) lines.push_back(std::move(l));
  lines.push_back("");
  lines.push_back("next: vigilctl policy preview " + std::to_string(c.id()) +
                  "   (its impact on every device); then another person runs");
  lines.push_back("      vigilctl policy approve " + std::to_string(c.id()) +
                  ", and an admin vigilctl policy apply " + std::to_string(c.id()));
  return Lines(lines);
}

std::string PolicyChangeBrief(const v1::PolicyChange& c) {
  auto kv = ChangeHeader(c);
  if (c.state() == v1::REJECTED || !c.decision_reason().empty()) {
    kv.push_back({"decision", c.decision_reason()});
  }
  return Lines(KeyValues(kv));
}

std::string PolicyChangeDetail(const v1::PolicyChange& c) {
  auto kv = ChangeHeader(c);
  kv.push_back({"set", c.set_version()});
  kv.push_back({"base", c.base_version() ? "version " + std::to_string(c.base_version()) : ""});
  kv.push_back({"reason", c.reason()});
  kv.push_back({"rollback plan", c.rollback_plan()});
  kv.push_back({"decision", c.decision_reason()});
  std::vector<std::string> lines = KeyValues(kv);
  lines.push_back("");
  lines.push_back(DiffHeading(c.base_version()));
  for (auto& l : Indented(c.diff())) lines.push_back(std::move(l));
  std::string out = Lines(lines);
  if (HasSnapshot(c.before()) || HasSnapshot(c.after())) {
    out += "\nCOMPLIANCE AT APPLY\n";
    out += FormatTable(
        StatusCountsTable({"BEFORE", "AFTER"}, {&c.before().by_status(), &c.after().by_status()}));
    if (c.before().by_check_size() + c.after().by_check_size() > 0) {
      out += "\n" + FormatTable(CheckCountsTable({"BEFORE", "AFTER"},
                                                 {&c.before().by_check(), &c.after().by_check()}));
    }
  }
  return out;
}

Table StatusCountsTable(const std::vector<std::string>& columns,
                        const std::vector<const RepeatedPtrField<v1::StatusCount>*>& counts) {
  std::map<int, std::vector<uint64_t>> by_status;  // enum value -> one count per column
  std::vector<uint64_t> totals(columns.size(), 0);
  for (size_t col = 0; col < counts.size() && col < columns.size(); ++col) {
    for (const auto& c : *counts[col]) {
      auto& row = by_status[c.status()];
      row.resize(columns.size(), 0);
      row[col] += c.count();
      totals[col] += c.count();
    }
  }
  Table t;
  t.header = {"STATUS"};
  t.header.insert(t.header.end(), columns.begin(), columns.end());
  for (const auto& [status, values] : by_status) {
    Row r = {Or(StatusName(static_cast<v1::DeviceStatus>(status)), Style::kTable)};
    for (uint64_t v : values) r.push_back(Num(v));
    t.rows.push_back(std::move(r));
  }
  Row total = {"TOTAL"};
  for (uint64_t v : totals) total.push_back(Num(v));
  t.rows.push_back(std::move(total));
  return t;
}

Table CheckCountsTable(const std::vector<std::string>& columns,
                       const std::vector<const RepeatedPtrField<v1::CheckCount>*>& counts) {
  // check -> (failing, excepted) per column
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> by_check;
  for (size_t col = 0; col < counts.size() && col < columns.size(); ++col) {
    for (const auto& c : *counts[col]) {
      auto& row = by_check[c.check()];
      row.resize(columns.size());
      row[col].first += c.failing();
      row[col].second += c.excepted();
    }
  }
  Table t;
  t.header = {"CHECK"};
  t.header.insert(t.header.end(), columns.begin(), columns.end());
  for (const auto& [check, values] : by_check) {
    Row r = {check};
    for (const auto& [failing, excepted] : values) {
      r.push_back(Num(failing) + (excepted ? " (" + Num(excepted) + " excepted)" : ""));
    }
    t.rows.push_back(std::move(r));
  }
  return t;
}

std::string PolicyImpactText(const v1::PolicyImpact& im) {
  std::vector<std::string> lines;
  if (im.current_version() != im.base_version()) {
    lines.push_back("WARNING: change " + std::to_string(im.change_id()) +
                    " was proposed on version " + std::to_string(im.base_version()) +
                    " but the current version is " + std::to_string(im.current_version()) + ":");
    lines.push_back(
        "WARNING: applying it will be refused. Propose it again on the current version");
    lines.push_back("WARNING: (vigilctl policy show, edit, vigilctl policy propose).");
    lines.push_back("");
  }
  lines.push_back("change " + std::to_string(im.change_id()) + " on version " +
                  std::to_string(im.base_version()) + " (current " +
                  std::to_string(im.current_version()) + "): " + std::to_string(im.devices()) +
                  " devices, " + std::to_string(im.changed()) + " would change status");
  lines.push_back("");
  lines.push_back(DiffHeading(im.base_version()));
  for (auto& l : Indented(im.diff())) lines.push_back(std::move(l));
  std::string out = Lines(lines) + "\n";

  Table st = StatusCountsTable({"BEFORE", "AFTER"}, {&im.before(), &im.after()});
  st.header.push_back("CHANGE");
  for (auto& r : st.rows) {
    int64_t before = std::stoll(r[1]), after = std::stoll(r[2]);
    r.push_back(Signed(after - before));
  }
  out += FormatTable(st);

  if (im.checks_size() > 0) {
    Table ct;
    ct.header = {"CHECK", "FAILING-BEFORE", "FAILING-AFTER", "NEWLY-FAILING", "NEWLY-PASSING"};
    for (const auto& c : im.checks()) {
      ct.rows.push_back({c.check(), Num(c.failing_before()), Num(c.failing_after()),
                         Num(c.newly_failing()), Num(c.newly_passing())});
    }
    out += "\n" + FormatTable(ct);
  }

  out += "\n";
  if (im.changed() == 0 && im.devices_changed_size() == 0) {
    out += "no device would change status\n";
    return out;
  }
  std::string heading = "DEVICES WHOSE STATUS WOULD CHANGE (" + std::to_string(im.changed());
  if (static_cast<uint64_t>(im.devices_changed_size()) < im.changed()) {
    heading +=
        "; the first " + std::to_string(im.devices_changed_size()) + " listed, --limit N for more";
  }
  out += heading + ")\n";
  Table dt;
  dt.header = {"DEVICE", "HOSTNAME", "STATUS", "FAILING-AFTER"};
  for (const auto& d : im.devices_changed()) {
    dt.rows.push_back({d.device_id(), Or(d.hostname(), Style::kTable),
                       Or(StatusName(d.before()), Style::kTable) + " -> " +
                           Or(StatusName(d.after()), Style::kTable),
                       Join(d.failing_after(), Style::kTable)});
  }
  out += FormatTable(dt);
  return out;
}

std::string PolicyReviewText(const v1::PolicyReview& rv) {
  const auto& c = rv.change();
  std::vector<std::string> lines;
  std::string head = "change " + std::to_string(c.id()) + " (" + KindText(c) + ", " +
                     PolicyChangeStateName(c.state()) + ")";
  if (c.version()) head += " made version " + std::to_string(c.version());
  std::string applied = ByAt(c.applied_by(), c.applied_at());
  if (!applied.empty()) head += ", applied by " + applied;
  lines.push_back(head);
  lines.push_back("current version " + std::to_string(rv.current_version()) +
                  (rv.current_version() == c.version() && c.version() ? " (this change's)" : ""));
  const std::string applied_at = FormatTime(rv.before().at());
  lines.push_back("BEFORE  at apply" + (applied_at.empty() ? "" : " (" + applied_at + ")") +
                  ", before every device was re-judged");
  lines.push_back("AFTER   right after");
  lines.push_back("NOW     " + Or(FormatTime(rv.now().at()), Style::kTable));
  std::string out = Lines(lines) + "\n";
  out += FormatTable(StatusCountsTable(
      {"BEFORE", "AFTER", "NOW"},
      {&rv.before().by_status(), &rv.after().by_status(), &rv.now().by_status()}));
  out += "\nFAILING DEVICES BY CHECK\n";
  Table ct =
      CheckCountsTable({"BEFORE", "AFTER", "NOW"},
                       {&rv.before().by_check(), &rv.after().by_check(), &rv.now().by_check()});
  out += ct.rows.empty() ? "  (no check fails anywhere)\n" : FormatTable(ct);
  return out;
}

std::string DiffText(const RepeatedPtrField<std::string>& lines) {
  if (lines.empty()) return "(no differences)\n";
  return Lines({lines.begin(), lines.end()});
}

Table PolicyChangesTable(const v1::ListPolicyChangesResponse& resp, Style style) {
  // The change that made the current version current: the last applied one with that version
  // (a rollback to it comes after the change that first made it).
  int current = -1;
  for (int i = 0; i < resp.changes_size(); ++i) {
    const auto& c = resp.changes(i);
    if (c.state() == v1::APPLIED && c.version() != 0 && c.version() == resp.current_version()) {
      current = i;
    }
  }
  Table t;
  if (style == Style::kTable) {
    t.header = {"ID",          "KIND",       "STATE",      "VERSION", "PROPOSED-BY",
                "PROPOSED-AT", "DECIDED-BY", "APPLIED-AT", "REASON"};
  } else {
    t.header = {"id",
                "kind",
                "state",
                "version",
                "current",
                "rollback_to",
                "base_version",
                "set_version",
                "proposed_by",
                "proposed_at",
                "decided_by",
                "decided_at",
                "decision_reason",
                "applied_by",
                "applied_at",
                "devices_changed",
                "reason",
                "rollback_plan"};
  }
  for (int i = 0; i < resp.changes_size(); ++i) {
    const auto& c = resp.changes(i);
    if (style == Style::kTable) {
      std::string version = NumOr(c.version(), style);
      if (i == current) version += " (current)";
      t.rows.push_back({Num(c.id()), KindText(c), PolicyChangeStateName(c.state()), version,
                        Or(c.proposed_by(), style), When(c.proposed_at(), style),
                        Or(c.decided_by(), style), When(c.applied_at(), style),
                        Or(c.reason(), style)});
    } else {
      t.rows.push_back({Num(c.id()), PolicyChangeKindName(c.kind()),
                        PolicyChangeStateName(c.state()), NumOr(c.version(), style),
                        i == current ? "true" : "false", NumOr(c.rollback_to(), style),
                        NumOr(c.base_version(), style), c.set_version(), c.proposed_by(),
                        When(c.proposed_at(), style), c.decided_by(), When(c.decided_at(), style),
                        c.decision_reason(), c.applied_by(), When(c.applied_at(), style),
                        c.state() == v1::APPLIED ? Num(c.devices_changed()) : "", c.reason(),
                        c.rollback_plan()});
    }
  }
  return t;
}

Table ExceptionsTable(const RepeatedPtrField<v1::PolicyException>& exceptions, Style style) {
  Table t;
  if (style == Style::kTable) {
    t.header = {"ID", "STATE", "FOR", "CHECK", "EXPIRES", "REQUESTED-BY", "DECIDED-BY", "REASON"};
  } else {
    t.header = {"id",         "state",           "device_id",    "tag",          "check",
                "reason",     "expires_at",      "requested_by", "requested_at", "decided_by",
                "decided_at", "decision_reason", "ended_by",     "ended_at",     "end_reason"};
  }
  for (const auto& e : exceptions) {
    if (style == Style::kTable) {
      std::string scope = !e.device_id().empty() ? "device " + e.device_id()
                          : !e.tag().empty()     ? "tag " + e.tag()
                                                 : "-";
      t.rows.push_back({Num(e.id()), ExceptionStateName(e.state()), scope, e.check(),
                        When(e.expires_at(), style), Or(e.requested_by(), style),
                        Or(e.decided_by(), style), Or(e.reason(), style)});
    } else {
      t.rows.push_back({Num(e.id()), ExceptionStateName(e.state()), e.device_id(), e.tag(),
                        e.check(), e.reason(), When(e.expires_at(), style), e.requested_by(),
                        When(e.requested_at(), style), e.decided_by(), When(e.decided_at(), style),
                        e.decision_reason(), e.ended_by(), When(e.ended_at(), style),
                        e.end_reason()});
    }
  }
  return t;
}

std::string ExceptionBrief(const v1::PolicyException& e) {
  std::string scope = !e.device_id().empty() ? "device " + e.device_id()
                      : !e.tag().empty()     ? "tag " + e.tag() + " (every device carrying it)"
                                             : "";
  auto with_reason = [](std::string who, const std::string& why) {
    return who.empty() || why.empty() ? who : who + ": " + why;
  };
  return Lines(KeyValues({
      {"exception", std::to_string(e.id())},
      {"state", ExceptionStateName(e.state())},
      {"for", scope},
      {"check", e.check()},
      {"expires", FormatTime(e.expires_at())},
      {"reason", e.reason()},
      {"requested", ByAt(e.requested_by(), e.requested_at())},
      {"decided", with_reason(ByAt(e.decided_by(), e.decided_at()), e.decision_reason())},
      {"ended", with_reason(ByAt(e.ended_by(), e.ended_at()), e.end_reason())},
  }));
}

std::unique_ptr<Output> StdoutOutput() { return std::make_unique<StdoutWriter>(); }

Result<std::unique_ptr<Output>> AtomicFileOutput(const std::string& path) {
  if (path.empty() || path.back() == '/') {
    return Status::InvalidArgument("--output: '" + path + "' is not a file name");
  }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp = (dir == "/" ? "" : dir) + "/." + base + ".tmp.XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "create a temporary file in " + dir);
  return std::unique_ptr<Output>(new AtomicFileWriter(path, dir, tmp, fd));
}

}  // namespace vigil::ctl

#include "server/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "vigil/v1/attestation.pb.h"

namespace vigil::server {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

std::vector<double> Histogram::LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Histogram::Observe(double value) {
  if (!(value > 0)) value = 0;  // also NaN
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                 bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  // Capped at ~11 days per observation so that a wild value cannot wrap the sum.
  double nanos = std::min(value, 1e6) * 1e9;
  sum_nanos_.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", value);
  }
  return buf;
}

namespace {

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void MetricsText::Family(const std::string& name, const std::string& type,
                         const std::string& help) {
  out_ += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  out_ += "# TYPE " + name + " " + type + "\n";
}

void MetricsText::Line(const std::string& name, const Labels& labels, const std::string& value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += k + "=\"" + EscapeLabelValue(v) + "\"";
    }
    out_ += '}';
  }
  out_ += ' ' + value + '\n';
}

void MetricsText::Sample(const std::string& name, const Labels& labels, double value) {
  Line(name, labels, FormatMetricValue(value));
}

void MetricsText::Sample(const std::string& name, const Labels& labels, uint64_t value) {
  Line(name, labels, std::to_string(value));
}

void MetricsText::HistogramFamily(const std::string& name, const std::string& help,
                                  const Histogram::Snapshot& s) {
  Family(name, "histogram", help);
  for (size_t i = 0; i < s.upper_bounds.size(); ++i) {
    Sample(name + "_bucket", {{"le", FormatMetricValue(s.upper_bounds[i])}}, s.cumulative[i]);
  }
  Sample(name + "_bucket", {{"le", "+Inf"}}, s.count);
  Sample(name + "_sum", {}, s.sum);
  Sample(name + "_count", {}, s.count);
}

namespace {

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::string RenderServerMetrics(const ServerMetricsInput& in) {
  MetricsText m;

  // Every status, zeros included: an absent series and a zero count read differently.
  m.Family("vigil_devices", "gauge", "Enrolled devices by effective status.");
  std::map<int, uint64_t> by_status;
  for (const auto& c : in.summary->by_status()) by_status[c.status()] += c.count();
  const auto* statuses = v1::DeviceStatus_descriptor();
  for (int i = 0; i < statuses->value_count(); ++i) {
    const auto* v = statuses->value(i);
    if (v->number() == v1::DEVICE_STATUS_UNSPECIFIED) continue;
    m.Sample("vigil_devices", {{"status", v->name()}}, by_status[v->number()]);
  }

  std::map<std::string, uint64_t> counters(in.counters.begin(), in.counters.end());
  auto get = [&](const std::string& name) {
    auto it = counters.find(name);
    return it == counters.end() ? uint64_t{0} : it->second;
  };

  m.Family("vigil_attestations_total", "counter",
           "Attestations acknowledged: accepted live, accepted as history (issued before the "
           "live window), or a duplicate of one already stored.");
  m.Sample("vigil_attestations_total", {{"result", "accepted"}}, get("report.accepted"));
  m.Sample("vigil_attestations_total", {{"result", "accepted_history"}},
           get("report.accepted_history"));
  m.Sample("vigil_attestations_total", {{"result", "duplicate"}}, get("report.duplicate"));

  m.Family("vigil_attestations_rejected_total", "counter",
           "Attestations (or whole reports) refused, by reason.");
  const std::string kRejected = "report.rejected.";
  for (const auto& [name, value] : counters) {
    if (StartsWith(name, kRejected)) {
      m.Sample("vigil_attestations_rejected_total", {{"reason", name.substr(kRejected.size())}},
               value);
    }
  }

  m.Family("vigil_auth_failures_total", "counter",
           "API calls refused for their token (gRPC and HTTPS), by reason.");
  const std::string kAuth = "auth.rejected.";
  for (const auto& [name, value] : counters) {
    if (StartsWith(name, kAuth)) {
      m.Sample("vigil_auth_failures_total", {{"reason", name.substr(kAuth.size())}}, value);
    }
  }

  m.HistogramFamily("vigil_report_duration_seconds",
                    "Time to answer one AgentService.Report call (verify, commit, acknowledge).",
                    *in.report_duration);

  // alert.delivery.RESULT.SINK (server/alerts.cc): the result is one word, the sink name the rest.
  std::map<std::pair<std::string, std::string>, uint64_t> deliveries;
  if (in.sinks != nullptr) {
    for (const auto& s : *in.sinks) {
      for (const char* result : {"delivered", "retried", "failed"}) {
        deliveries[{s.name(), result}] += 0;
      }
    }
  }
  const std::string kDelivery = "alert.delivery.";
  for (const auto& [name, value] : counters) {
    if (!StartsWith(name, kDelivery)) continue;
    std::string rest = name.substr(kDelivery.size());
    size_t dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == rest.size()) continue;
    deliveries[{rest.substr(dot + 1), rest.substr(0, dot)}] += value;
  }
  m.Family("vigil_alert_deliveries_total", "counter",
           "Alert delivery attempts by sink and result (delivered, retried, failed: refused for "
           "good) since the server started.");
  for (const auto& [key, value] : deliveries) {
    m.Sample("vigil_alert_deliveries_total", {{"sink", key.first}, {"result", key.second}}, value);
  }
  if (in.sinks != nullptr) {
    m.Family("vigil_alert_outbox_depth", "gauge", "Alerts waiting for delivery, by sink.");
    for (const auto& s : *in.sinks) {
      m.Sample("vigil_alert_outbox_depth", {{"sink", s.name()}}, s.pending());
    }
    m.Family("vigil_alert_given_up_total", "counter",
             "Alerts given up on (the receiver refused them for good), by sink.");
    for (const auto& s : *in.sinks) {
      m.Sample("vigil_alert_given_up_total", {{"sink", s.name()}}, s.failed());
    }
  }

  m.Family("vigil_counter_total", "counter",
           "Every named server counter (vigilctl stats), by name.");
  for (const auto& [name, value] : counters) {
    m.Sample("vigil_counter_total", {{"name", name}}, value);
  }
  return m.text();
}

}  // namespace vigil::server

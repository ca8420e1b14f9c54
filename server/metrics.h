// Metrics for Prometheus: a fixed-bucket latency Histogram that many threads observe without a
// lock (one relaxed atomic add per bucket hit, count and sum), a writer of the text exposition
// format (version 0.0.4), and RenderServerMetrics, which turns what the server knows (the fleet
// summary, the named Counters, the report-latency histogram, the alert sinks) into the page
// served at GET /metrics (docs/api.md lists every name).
//
// Histogram is thread-safe; a Read() taken while others observe is consistent per bucket (the
// count is the sum of the buckets read, so `_count` always equals the `+Inf` bucket) but may
// miss observations made during the read. MetricsText is a plain value (one thread).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vigil/v1/fleet_service.pb.h"

namespace vigil::server {

class Histogram {
 public:
  // `upper_bounds`: ascending, finite; an implicit +Inf bucket follows the last.
  explicit Histogram(std::vector<double> upper_bounds);
  // 1 ms .. 10 s, roughly 1-2.5-5 per decade: the report path's range from an idle server to a
  // saturated one.
  static std::vector<double> LatencyBuckets();

  // Records one value (seconds for latencies). Negative values count as 0.
  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf: observations <= the bound
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<uint64_t> sum_nanos_{0};                // sum in 1e-9 units: no atomic double
};

// Observes the seconds from construction to destruction into `histogram` (nothing when null).
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram* histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    if (histogram_ == nullptr) return;
    histogram_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Histogram* histogram_;
  std::chrono::steady_clock::time_point start_;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

// Builds an exposition-format page. Every family is announced once with Family() before its
// samples; label values are escaped (backslash, quote, newline).
class MetricsText {
 public:
  void Family(const std::string& name, const std::string& type, const std::string& help);
  void Sample(const std::string& name, const Labels& labels, double value);
  void Sample(const std::string& name, const Labels& labels, uint64_t value);
  // A whole histogram family: NAME_bucket{le=...}, NAME_sum, NAME_count.
  void HistogramFamily(const std::string& name, const std::string& help,
                       const Histogram::Snapshot& snapshot);
  const std::string& text() const { return out_; }

 private:
  void Line(const std::string& name, const Labels& labels, const std::string& value);
  std::string out_;
};

// Formats a sample value the way Prometheus reads it (integers without a fraction, +Inf).
std::string FormatMetricValue(double value);

struct ServerMetricsInput {
  const v1::SummaryResponse* summary = nullptr;            // required
  std::vector<std::pair<std::string, uint64_t>> counters;  // Counters::Snapshot()
  const Histogram::Snapshot* report_duration = nullptr;    // required
  const std::vector<v1::SinkState>* sinks = nullptr;       // null: alert state unknown
};

// The /metrics page. Counter mapping (names are the Counters' keys, e.g. "report.accepted"):
//   vigil_attestations_total{result}          report.accepted, report.accepted_history,
//                                              report.duplicate
//   vigil_attestations_rejected_total{reason} report.rejected.REASON
//   vigil_auth_failures_total{reason}         auth.rejected.REASON
//   vigil_alert_deliveries_total{sink,result} alert.delivery.RESULT.SINK (zero-filled with
//                                              delivered, retried, failed for every known sink)
//   vigil_counter_total{name}                 every counter, whatever its name
std::string RenderServerMetrics(const ServerMetricsInput& in);

}  // namespace vigil::server

#include "server/alerts.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "server/fleet.h"

namespace vigil::server {
namespace {

constexpr uint32_t kPage = 100;  // alerts read per round

}  // namespace

AlertDispatcher::AlertDispatcher(Store& store, const Clock& clock, Counters& counters,
                                 std::vector<std::unique_ptr<AlertSink>> sinks,
                                 AlertOptions options)
    : store_(store),
      clock_(clock),
      counters_(counters),
      sinks_(std::move(sinks)),
      options_(std::move(options)),
      rng_(std::random_device{}()) {}

AlertDispatcher::~AlertDispatcher() { Stop(); }

int64_t AlertDispatcher::Backoff(uint32_t attempts, int64_t cap_ms, std::mt19937_64& rng) {
  int64_t d = 1000;
  for (uint32_t i = 1; i < attempts && d < cap_ms; ++i) d *= 2;
  d = std::min(d, cap_ms);
  int64_t half = d / 2;
  return half + static_cast<int64_t>(rng() % static_cast<uint64_t>(d - half + 1));
}

int AlertDispatcher::DeliverOnce(size_t index) {
  AlertSink& sink = *sinks_[index];
  int64_t now = clock_.NowMillis();
  auto lease = store_.LeaseSink(sink.name(), options_.owner, now, options_.lease_ms);
  if (!lease.ok()) {
    spdlog::warn("alert sink {}: {}", sink.name(), lease.status().ToString());
    return 0;
  }
  if (!lease->has_value()) return 0;  // another replica delivers this sink
  SinkCursor cursor = **lease;
  if (cursor.next_attempt_ms > now) return 0;  // backing off
  auto instance = store_.InstanceId();
  if (!instance.ok()) {
    spdlog::warn("alert sink {}: {}", sink.name(), instance.status().ToString());
    return 0;
  }
  auto alerts = store_.ListAlerts(cursor.delivered_id, kPage, "");
  if (!alerts.ok()) {
    spdlog::warn("alert sink {}: {}", sink.name(), alerts.status().ToString());
    return 0;
  }
  // alert.delivery.RESULT.SINK (read by /metrics as vigil_alert_deliveries_total).
  auto count = [&](const char* result) {
    counters_.Inc(std::string("alert.delivery.") + result + "." + sink.name());
  };
  int done = 0;
  for (const AlertRecord& a : *alerts) {
    if (stopping_flag_.load()) return done;
    // Renew a lease that is half gone before the next attempt, so no other replica starts on
    // this sink while this one is still sending.
    now = clock_.NowMillis();
    if (now > cursor.lease_until_ms - options_.lease_ms / 2) {
      auto renewed = store_.LeaseSink(sink.name(), options_.owner, now, options_.lease_ms);
      if (!renewed.ok() || !renewed->has_value()) return done;
      cursor.lease_until_ms = (*renewed)->lease_until_ms;
    }
    Delivery d = sink.Send(ToAlert(a, *instance));
    switch (d.outcome) {
      case DeliveryOutcome::kDelivered:
        count("delivered");
        if (cursor.attempts > 0) cursor.last_error.clear();  // a refusal stays on record
        break;
      case DeliveryOutcome::kRejected:
        count("failed");
        spdlog::warn("alert sink {}: alert {} refused for good, skipped: {}", sink.name(), a.id,
                     d.error);
        ++cursor.failed;
        cursor.last_error = "alert " + std::to_string(a.id) + " refused: " + d.error;
        break;
      case DeliveryOutcome::kRetry: {
        count("retried");
        ++cursor.attempts;
        {
          std::lock_guard<std::mutex> lock(rng_mu_);
          cursor.next_attempt_ms =
              clock_.NowMillis() + Backoff(cursor.attempts, options_.retry_max_ms, rng_);
        }
        cursor.last_error = d.error;
        if (cursor.attempts == 1 || cursor.attempts % 10 == 0) {
          spdlog::warn("alert sink {}: alert {} not delivered (attempt {}), will retry: {}",
                       sink.name(), a.id, cursor.attempts, d.error);
        }
        if (Status s = store_.UpdateSink(cursor); !s.ok()) {
          spdlog::warn("alert sink {}: {}", sink.name(), s.ToString());
        }
        return done;
      }
    }
    cursor.delivered_id = a.id;
    cursor.attempts = 0;
    cursor.next_attempt_ms = 0;
    if (Status s = store_.UpdateSink(cursor); !s.ok()) {
      // The lease was lost (this replica stalled past it): the new holder resends this alert
      // with the same idempotency key.
      spdlog::warn("alert sink {}: {}", sink.name(), s.ToString());
      return done;
    }
    ++done;
  }
  return done;
}

uint64_t AlertDispatcher::RaiseDue() {
  uint64_t raised = 0;
  int64_t now = clock_.NowMillis();
  auto stale = store_.ClaimJob("alerts.stale", now, options_.stale_period_ms);
  if (stale.ok() && *stale) {
    const int64_t window =
        options_.policy ? options_.policy->Get()->CheckinWindowMs() : options_.checkin_window_ms;
    auto n = store_.RaiseStaleAlerts(now - window, now);
    if (!n.ok()) {
      spdlog::error("stale alerts: {}", n.status().ToString());
    } else {
      raised += *n;
      counters_.Inc("alert.raised.stale", *n);
    }
  } else if (!stale.ok()) {
    spdlog::error("stale alerts: {}", stale.status().ToString());
  }
  if (options_.enroll_failure_threshold == 0) return raised;
  auto enroll = store_.ClaimJob("alerts.enroll_failures", now, options_.enroll_failure_window_ms);
  if (!enroll.ok()) {
    spdlog::error("enrollment failure alerts: {}", enroll.status().ToString());
    return raised;
  }
  if (!*enroll) return raised;
  auto failures = store_.CountAuthFailures("enroll.", now - options_.enroll_failure_window_ms);
  if (!failures.ok()) {
    spdlog::error("enrollment failure alerts: {}", failures.status().ToString());
    return raised;
  }
  if (*failures >= options_.enroll_failure_threshold) {
    AlertRecord a;
    a.kind = "enrollment.failures";
    a.at_ms = now;
    a.reason = std::to_string(*failures) + " failed enrollments in the last " +
               std::to_string(options_.enroll_failure_window_ms / 1000) + " s (threshold " +
               std::to_string(options_.enroll_failure_threshold) + "); see `vigilctl audit`";
    if (auto id = store_.InsertAlert(a); id.ok()) {
      ++raised;
      counters_.Inc("alert.raised.enrollment_failures");
    } else {
      spdlog::error("enrollment failure alerts: {}", id.status().ToString());
    }
  }
  return raised;
}

void AlertDispatcher::Start() {
  // Each sink's cursor exists before the server answers its first report, so no alert raised
  // from then on can fall before a new sink's starting point.
  for (const auto& sink : sinks_) {
    auto lease =
        store_.LeaseSink(sink->name(), options_.owner, clock_.NowMillis(), options_.lease_ms);
    if (!lease.ok()) spdlog::warn("alert sink {}: {}", sink->name(), lease.status().ToString());
  }
  for (size_t i = 0; i < sinks_.size(); ++i) {
    threads_.emplace_back([this, i] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        lock.unlock();
        int n = DeliverOnce(i);
        lock.lock();
        // A full page delivered: more may be waiting, go on at once.
        if (n < static_cast<int>(kPage)) {
          cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms),
                       [this] { return stopping_; });
        }
      }
    });
  }
}

void AlertDispatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stopping_flag_ = true;
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace vigil::server

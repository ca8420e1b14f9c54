// Alerts: raising the ones no device row change marks, and delivering the outbox to the sinks.
//
// Device transitions into NON_COMPLIANT or TAMPERED and back to COMPLIANT are written by the
// store in the transaction that changes the device (store_sql.h), so an alert is never lost and
// never raised for a change that rolled back. Two kinds depend on time instead, and are raised
// here by jobs claimed through the store (one replica per period): "device.stale" (a device
// stops reporting; Store::RaiseStaleAlerts) and "enrollment.failures" (at least a threshold of
// failed enrollments within a window, counted in the shared audit log).
//
// Delivery: each sink has a cursor in the store (the last alert id delivered or given up). A
// replica takes the sink's lease (Store::LeaseSink) and sends the alerts after the cursor in id
// order, one attempt at a time: delivered or refused for good (counted as failed) moves the
// cursor; a transient failure keeps it and waits an exponential backoff with jitter, capped. So
// a receiver that is down for an hour gets every alert when it returns, in order; a replica that
// dies between a delivery and its cursor update leaves one alert to be sent again with the same
// idempotency key, which receivers deduplicate on. Thread-safe: one thread per sink.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "server/alert_sinks.h"
#include "server/limits.h"
#include "server/policy_state.h"
#include "server/store.h"

namespace vigil::server {

struct AlertOptions {
  std::string owner;               // this replica's lease name (unique per process)
  int64_t retry_max_ms = 300'000;  // backoff cap
  // A dead replica's sinks move after this; at least twice the longest send, so a slow send
  // never outlives the lease it started under (MakeAlerts sizes it from the sinks' timeouts).
  int64_t lease_ms = 30'000;
  int64_t poll_ms = 1'000;                 // how often an idle sink looks for new alerts
  int64_t stale_period_ms = 60'000;        // how often devices are checked for staleness
  int64_t checkin_window_ms = 3'600'000;   // the policy's check-in window, unless:
  const PolicyState* policy = nullptr;     // the policy in force, whose window then counts
  uint32_t enroll_failure_threshold = 20;  // 0: no enrollment-failure alerts
  int64_t enroll_failure_window_ms = 300'000;
};

class AlertDispatcher {
 public:
  AlertDispatcher(Store& store, const Clock& clock, Counters& counters,
                  std::vector<std::unique_ptr<AlertSink>> sinks, AlertOptions options);
  ~AlertDispatcher();

  // One delivery round for sink `index`: takes or renews its lease and sends the alerts that
  // are due, stopping at the first transient failure. Returns how many it delivered or gave up.
  int DeliverOnce(size_t index);

  // The time-driven alerts (stale devices, enrollment failures) that this replica claims.
  // Called by the server's job timer and directly by tests. Returns how many were raised.
  uint64_t RaiseDue();

  // One thread per sink, calling DeliverOnce until Stop.
  void Start();
  void Stop();

  // The wait after the `attempts`-th failure in a row: half of min(cap, 1 s * 2^(attempts-1))
  // plus a random part of the other half, so many replicas' retries do not stay in step.
  static int64_t Backoff(uint32_t attempts, int64_t cap_ms, std::mt19937_64& rng);

  size_t sink_count() const { return sinks_.size(); }

 private:
  Store& store_;
  const Clock& clock_;
  Counters& counters_;
  std::vector<std::unique_ptr<AlertSink>> sinks_;
  const AlertOptions options_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // read between sends, without mu_
};

}  // namespace vigil::server

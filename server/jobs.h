// Background work of a server: today history retention. Each job is claimed through the store
// for its period (Store::ClaimJob), so with several replicas on one database exactly one runs it
// per period; the others skip. Time comes from the injected clock. RunDue is called by the
// server's timer thread (server/main.cc) and directly by tests. Not thread-safe: one caller.
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "server/limits.h"
#include "server/store.h"

namespace vigil::server {

class BackgroundJobs {
 public:
  static constexpr int64_t kRetentionPeriodMs = 60 * 60 * 1000;  // sweep hourly

  // retention_ms == 0 keeps history forever.
  BackgroundJobs(Store& store, const Clock& clock, Counters& counters, int64_t retention_ms)
      : store_(store), clock_(clock), counters_(counters), retention_ms_(retention_ms) {}

  // Runs every job that is due and that this replica claims. Returns how many ran here.
  int RunDue();

 private:
  Store& store_;
  const Clock& clock_;
  Counters& counters_;
  const int64_t retention_ms_;
};

}  // namespace vigil::server

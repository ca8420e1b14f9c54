// Clock-driven re-collection: a step of the wall clock (settimeofday, an NTP step) or a resume
// from suspend makes the agent collect and report at once. After a resume the daemon's periodic
// timer (CLOCK_MONOTONIC, which does not count suspended time) would run late, and after a
// clock step the last report carries a misleading issue time.
//
// ClassifyClockChange is pure (tested). ClockWatcher plugs a Linux timerfd that the kernel
// cancels on every clock set and on resume into the daemon's Boost.Asio loop, and calls back
// only when the change is large enough to matter. Single-threaded: the io_context's.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"

namespace vigil::agent {

// The three clocks read together, in milliseconds. realtime - boottime moves only when the wall
// clock is set; boottime - monotonic grows only by time spent suspended.
struct ClockSample {
  int64_t realtime_ms = 0;   // CLOCK_REALTIME
  int64_t monotonic_ms = 0;  // CLOCK_MONOTONIC: stops while suspended
  int64_t boottime_ms = 0;   // CLOCK_BOOTTIME: monotonic plus time suspended
};

// Reads CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME now.
ClockSample SampleClocks();

// Changes smaller than this (leap seconds, NTP corrections) do not warrant a collection.
inline constexpr int64_t kClockChangeThresholdMs = 2000;

// Why a collection is due between two samples: "resume from suspend (slept N s)" when more than
// `threshold_ms` of suspended time passed, "clock jump (+N s)" / "clock jump (-N s)" when the
// wall clock was stepped by more than `threshold_ms` (beyond what the suspend explains), both
// joined by ", " when both happened; nullopt for smaller changes.
std::optional<std::string> ClassifyClockChange(const ClockSample& before, const ClockSample& after,
                                               int64_t threshold_ms);

class ClockWatcher {
 public:
  using Sampler = std::function<ClockSample()>;

  // `on_change` runs on the io_context's thread with the classification of each change that
  // matters. `sample` reads the clocks (tests substitute their own).
  ClockWatcher(boost::asio::io_context& io, std::function<void(const std::string& why)> on_change,
               Sampler sample = SampleClocks);
  ~ClockWatcher();
  ClockWatcher(const ClockWatcher&) = delete;
  ClockWatcher& operator=(const ClockWatcher&) = delete;

  // Creates and arms the timerfd and takes the first sample. Fails when the kernel lacks
  // TFD_TIMER_CANCEL_ON_SET (before Linux 3.0) or the descriptor cannot join the loop.
  Status Start();

  // What the watcher does after the kernel cancelled its timer (re-arm, sample, classify, maybe
  // call back), without the cancel: a real one needs CAP_SYS_TIME or a suspend. Call only after
  // a successful Start(). Returns whether the timer is armed again (the watch goes on).
  bool SimulateCancelForTesting();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::agent

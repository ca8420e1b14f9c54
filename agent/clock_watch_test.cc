#include "agent/clock_watch.h"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

namespace vigil::agent {
namespace {

// A machine up for an hour, wall clock at 2026-01-01T00:00:00Z, never suspended.
constexpr ClockSample kStart{1'767'225'600'000, 3'600'000, 3'600'000};

// `ms` of normal running: all three clocks advance together.
ClockSample Run(ClockSample s, int64_t ms) {
  return {s.realtime_ms + ms, s.monotonic_ms + ms, s.boottime_ms + ms};
}
// `ms` suspended: monotonic stands still; the kernel adds the time slept to the others.
ClockSample Suspend(ClockSample s, int64_t ms) {
  return {s.realtime_ms + ms, s.monotonic_ms, s.boottime_ms + ms};
}
// The wall clock set by `ms` (settimeofday, an NTP step).
ClockSample Step(ClockSample s, int64_t ms) {
  return {s.realtime_ms + ms, s.monotonic_ms, s.boottime_ms};
}

TEST_CASE("clock_watch: classifying clock changes") {
  struct Case {
    const char* name;
    ClockSample after;
    std::optional<std::string> why;
  } cases[] = {
      {"nothing happened", Run(kStart, 10'000), std::nullopt},
      {"resume", Run(Suspend(kStart, 8 * 3600'000), 1'000), "resume from suspend (slept 28800 s)"},
      {"forward jump", Run(Step(kStart, 3600'000), 5'000), "clock jump (+3600 s)"},
      {"backward jump", Step(kStart, -90'000), "clock jump (-90 s)"},
      {"NTP slew below threshold", Step(Run(kStart, 60'000), 1'500), std::nullopt},
      {"leap second", Step(kStart, -1'000), std::nullopt},
      {"exactly the threshold is not more", Step(kStart, 2'000), std::nullopt},
      {"just over the threshold", Step(kStart, 2'001), "clock jump (+2 s)"},
      {"short suspend", Suspend(kStart, 1'999), std::nullopt},
      {"rounded to the nearest second", Suspend(kStart, 2'600), "resume from suspend (slept 3 s)"},
      {"resume and a step", Step(Suspend(kStart, 600'000), -7'200'000),
       "resume from suspend (slept 600 s), clock jump (-7200 s)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(ClassifyClockChange(kStart, c.after, kClockChangeThresholdMs) == c.why);
  }
}

TEST_CASE("clock_watch: the wall clock catching up after a resume is not a jump") {
  // realtime - monotonic grew by the hour slept; only realtime - boottime would show a step.
  ClockSample after = Suspend(kStart, 3600'000);
  REQUIRE(after.realtime_ms - after.monotonic_ms != kStart.realtime_ms - kStart.monotonic_ms);
  CHECK(ClassifyClockChange(kStart, after, kClockChangeThresholdMs) ==
        "resume from suspend (slept 3600 s)");
}

TEST_CASE("clock_watch: the real sample is consistent") {
  ClockSample s = SampleClocks();
  CHECK(s.realtime_ms > 1'600'000'000'000);  // after 2020
  CHECK(s.boottime_ms >= s.monotonic_ms);
  ClockSample later = SampleClocks();
  CHECK(later.monotonic_ms >= s.monotonic_ms);
  CHECK(!ClassifyClockChange(s, later, kClockChangeThresholdMs).has_value());
}

TEST_CASE("clock_watch: armed on a real timerfd, it stays quiet while nothing happens") {
  boost::asio::io_context io;
  std::vector<std::string> calls;
  int samples = 0;
  ClockWatcher watcher(
      io, [&](const std::string& why) { calls.push_back(why); },
      [&] {
        ++samples;
        return SampleClocks();
      });
  REQUIRE(watcher.Start().ok());
  CHECK(samples == 1);
  io.run_for(std::chrono::milliseconds(300));
  // A timer armed wrongly (in the past, or not cancel-on-set) would wake the loop and sample.
  CHECK(samples == 1);
  CHECK(calls.empty());
}

TEST_CASE("clock_watch: a cancel calls back only for changes that matter, once each") {
  boost::asio::io_context io;
  std::vector<std::string> calls;
  ClockSample now = kStart;
  ClockWatcher watcher(
      io, [&](const std::string& why) { calls.push_back(why); }, [&] { return now; });
  REQUIRE(watcher.Start().ok());

  now = Run(Suspend(now, 120'000), 50);
  CHECK(watcher.SimulateCancelForTesting());
  REQUIRE(calls.size() == 1);
  CHECK(calls[0] == "resume from suspend (slept 120 s)");

  // The baseline moved on: the same state again is nothing new.
  CHECK(watcher.SimulateCancelForTesting());
  CHECK(calls.size() == 1);

  now = Step(Run(now, 1'000), 300);  // an NTP nudge
  CHECK(watcher.SimulateCancelForTesting());
  CHECK(calls.size() == 1);

  now = Step(now, -3600'000);
  CHECK(watcher.SimulateCancelForTesting());
  REQUIRE(calls.size() == 2);
  CHECK(calls[1] == "clock jump (-3600 s)");

  io.run_for(std::chrono::milliseconds(50));  // re-arming did not make the timer fire
  CHECK(calls.size() == 2);
}

}  // namespace
}  // namespace vigil::agent

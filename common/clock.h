// Clock: injected wherever time matters (staleness, schedules, issue times) so tests control it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace vigil {

// "2026-12-01T23:16:24Z" (RFC 3339, UTC, whole seconds) for milliseconds since the epoch; empty
// when the time cannot be represented.
std::string UtcTime(int64_t ms);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMillis() const = 0;  // wall-clock milliseconds since the Unix epoch
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms) : now_(now_ms) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace vigil

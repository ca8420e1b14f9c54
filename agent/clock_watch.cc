#include "agent/clock_watch.h"

#include <spdlog/spdlog.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace vigil::agent {
namespace {

int64_t ReadClockMs(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);  // cannot fail for these clocks with a valid pointer
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

// Whole seconds, rounded to the nearest, of a non-negative duration.
std::string Seconds(int64_t ms) { return std::to_string((ms + 500) / 1000); }

}  // namespace

ClockSample SampleClocks() {
  return {ReadClockMs(CLOCK_REALTIME), ReadClockMs(CLOCK_MONOTONIC), ReadClockMs(CLOCK_BOOTTIME)};
}

std::optional<std::string> ClassifyClockChange(const ClockSample& before, const ClockSample& after,
                                               int64_t threshold_ms) {
  // A resume moves the wall clock too (realtime - monotonic grows by the time slept), so a step
  // is measured against boottime, which advanced by that same time: only a set of the clock
  // moves realtime - boottime.
  const int64_t slept_ms =
      (after.boottime_ms - after.monotonic_ms) - (before.boottime_ms - before.monotonic_ms);
  const int64_t step_ms =
      (after.realtime_ms - after.boottime_ms) - (before.realtime_ms - before.boottime_ms);
  std::string why;
  if (slept_ms > threshold_ms) why = "resume from suspend (slept " + Seconds(slept_ms) + " s)";
  if (std::llabs(step_ms) > threshold_ms) {
    if (!why.empty()) why += ", ";
    why += std::string("clock jump (") + (step_ms < 0 ? "-" : "+") + Seconds(std::llabs(step_ms)) +
           " s)";
  }
  if (why.empty()) return std::nullopt;
  return why;
}

// The timerfd is a CLOCK_REALTIME timer armed at the end of time with TFD_TIMER_CANCEL_ON_SET, so
// it never fires; the kernel cancels it instead, and read() fails with ECANCELED, whenever the
// offset between CLOCK_REALTIME and CLOCK_MONOTONIC changes:
//  - clock_settime/settimeofday/adjtimex steps call timerfd_clock_was_set() (fs/timerfd.c),
//    which cancels every CANCEL_ON_SET timer whose recorded offset (ctx->moffs) differs from
//    ktime_mono_to_real(0) now;
//  - on resume, timekeeping_resume() (kernel/time/timekeeping.c, torvalds/linux) injects the
//    time slept into the wall clock and boottime and then calls timerfd_resume(), commented
//    "Notify timerfd as resume is equivalent to clock_was_set()"; timerfd_resume() schedules
//    work that runs timerfd_clock_was_set() (fs/timerfd.c). Before a 2021 rework (lore:
//    20210713135158.488853478@linutronix.de) resume got there through hrtimers_resume() ->
//    clock_was_set_delayed() -> clock_was_set() -> timerfd_clock_was_set().
// systemd (PID 1, timesyncd) watches for clock changes the same way.
struct ClockWatcher::Impl {
  Impl(boost::asio::io_context& io, std::function<void(const std::string&)> cb, Sampler s)
      : timer(io), on_change(std::move(cb)), sample(std::move(s)) {}

  Status Arm() {
    itimerspec spec{};
    spec.it_value.tv_sec = std::numeric_limits<time_t>::max();
    for (int attempt = 0; attempt < 8; ++attempt) {
      if (::timerfd_settime(timer.native_handle(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
                            &spec, nullptr) == 0) {
        return Status::Ok();
      }
      // ECANCELED: the clock changed again since the read. Arming again loses nothing: the
      // sample taken after arming includes that change.
      if (errno == ECANCELED) continue;
      if (spec.it_value.tv_sec == std::numeric_limits<int32_t>::max()) break;
      // Some kernels refuse times past 2038 even with a 64-bit time_t (systemd falls back too).
      spec.it_value.tv_sec = std::numeric_limits<int32_t>::max();
    }
    return Status::FromErrno(errno, "timerfd_settime(TFD_TIMER_CANCEL_ON_SET)");
  }

  void Wait() {
    timer.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [this](const boost::system::error_code& ec) {
                       if (ec) return;
                       uint64_t expirations = 0;
                       ssize_t n = ::read(timer.native_handle(), &expirations, sizeof expirations);
                       if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                         Wait();  // woken for nothing
                         return;
                       }
                       if (n < 0 && errno != ECANCELED) {
                         spdlog::warn("clock watch stopped: read: {}", std::strerror(errno));
                         return;
                       }
                       // ECANCELED, or the far-future timer expired because the clock was set
                       // past it: either way the clock changed.
                       if (OnCanceled()) Wait();
                     });
  }

  // Re-arm before sampling: a change after the read() that consumed the cancel and before the
  // re-arm is then in this sample, and one after the re-arm cancels the timer again. Returns
  // whether the timer is armed (to keep waiting).
  bool OnCanceled() {
    Status armed = Arm();
    if (!armed.ok()) spdlog::warn("clock watch stopped: {}", armed.message());
    const ClockSample now = sample();
    auto why = ClassifyClockChange(baseline, now, kClockChangeThresholdMs);
    const ClockSample before = baseline;
    baseline = now;
    if (why) {
      on_change(*why);
    } else {
      spdlog::debug(
          "clock changed by less than {} ms (set {:+} ms, suspended {} ms): no collection",
          kClockChangeThresholdMs,
          (now.realtime_ms - now.boottime_ms) - (before.realtime_ms - before.boottime_ms),
          (now.boottime_ms - now.monotonic_ms) - (before.boottime_ms - before.monotonic_ms));
    }
    return armed.ok();
  }

  boost::asio::posix::stream_descriptor timer;
  std::function<void(const std::string&)> on_change;
  Sampler sample;
  ClockSample baseline;
};

ClockWatcher::ClockWatcher(boost::asio::io_context& io,
                           std::function<void(const std::string&)> on_change, Sampler sample)
    : impl_(std::make_unique<Impl>(io, std::move(on_change), std::move(sample))) {}

ClockWatcher::~ClockWatcher() = default;

Status ClockWatcher::Start() {
  int fd = ::timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "timerfd_create");
  boost::system::error_code ec;
  impl_->timer.assign(fd, ec);
  if (ec) {
    ::close(fd);
    return Status::Internal("clock watch: " + ec.message());
  }
  if (Status s = impl_->Arm(); !s.ok()) {
    impl_->timer.close(ec);
    return s;
  }
  // Arm first, then sample: a change in between is in the baseline, one after it cancels.
  impl_->baseline = impl_->sample();
  impl_->Wait();
  return Status::Ok();
}

bool ClockWatcher::SimulateCancelForTesting() { return impl_->OnCanceled(); }

}  // namespace vigil::agent

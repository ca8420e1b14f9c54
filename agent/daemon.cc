#include "agent/daemon.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <random>

#include "agent/agent.h"
#include "agent/clock_watch.h"
#include "agent/uevents.h"
#include "collectors/system_view.h"
#include "common/clock.h"
#include "common/files.h"

namespace vigil::agent {
namespace {

class Daemon {
 public:
  Daemon(boost::asio::io_context& io, std::function<Result<v1::AgentConfig>()> load_config,
         v1::AgentConfig config)
      : io_(io),
        timer_(io),
        event_timer_(io),
        signals_(io, SIGTERM, SIGINT, SIGHUP),
        watcher_(io, [this](const std::string& why) { OnSystemEvent(why); }),
        clock_watcher_(io, [this](const std::string& why) { OnSystemEvent(why); }),
        load_config_(std::move(load_config)),
        rng_(std::random_device{}()) {
    Apply(std::move(config));
  }

  void Start() {
    WaitSignal();
    if (Status s = watcher_.Start(); !s.ok()) {
      spdlog::warn("event-driven collection limited: {}", s.message());
    }
    if (Status s = clock_watcher_.Start(); !s.ok()) {
      spdlog::warn("no collection on clock jumps or resume: {}", s.message());
    }
    Schedule(std::chrono::milliseconds(0));
  }

 private:
  void Apply(v1::AgentConfig config) {
    config_ = std::move(config);
    view_ = collectors::NewRootedSystemView(config_.root());
    agent_ = std::make_unique<Agent>(config_, *view_, clock_);
    ResetTransport();
  }

  // The transport carries the client certificate, which enrollment and key rotation replace.
  void ResetTransport() {
    auto options = TransportOptionsFor(config_);
    if (!options.ok()) {
      spdlog::error("transport: {}", options.status().message());
      TransportOptions fallback;
      fallback.server = config_.server();
      fallback.insecure = config_.insecure();
      options = fallback;
    }
    transport_ = NewGrpcTransport(*options);
  }

  void WaitSignal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        auto fresh = load_config_();
        if (fresh.ok()) {
          Apply(std::move(fresh).value());
          spdlog::info("configuration re-read");
        } else {
          spdlog::error("configuration not changed: {}", fresh.status().message());
        }
        WaitSignal();
        return;
      }
      spdlog::info("signal {}: stopping", sig);
      timer_.cancel();
      event_timer_.cancel();
      signals_.cancel();
      io_.stop();
    });
  }

  // A USB device or mount appeared or went away, the wall clock was stepped, or the machine
  // resumed from suspend (which the periodic timer, on CLOCK_MONOTONIC, does not count): collect
  // and report now. Events come in bursts (a stick brings several uevents and a mount; a resume
  // re-plugs USB devices), so wait briefly and collect once. The periodic schedule stays as it
  // was: a burst adds one collection, it neither moves nor repeats the periodic one.
  void OnSystemEvent(const std::string& why) {
    if (event_pending_) return;
    event_pending_ = true;
    spdlog::info("{}: collecting now", why);
    event_timer_.expires_after(kEventSettle);
    event_timer_.async_wait([this](const boost::system::error_code& ec) {
      event_pending_ = false;
      if (ec || !enrolled_) return;
      auto seq = agent_->CollectAndQueue();
      if (!seq.ok()) {
        spdlog::error("collection failed: {}", seq.status().message());
        return;
      }
      auto flushed = agent_->Flush(*transport_);
      if (!flushed.ok()) {
        spdlog::warn("event report queued, send failed: {}", flushed.status().message());
        // The network is often not back yet right after a resume: retry with the usual backoff
        // rather than leave the report queued until the next periodic run. Only ever earlier.
        auto retry = Backoff();
        if (timer_.expiry() > std::chrono::steady_clock::now() + retry) Schedule(retry);
        return;
      }
      spdlog::info("event report: attestation {} sent, {} acknowledged", *seq,
                   flushed->acknowledged);
    });
  }

  void Schedule(std::chrono::milliseconds delay) {
    timer_.expires_after(delay);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) Tick();
    });
  }

  void Tick() {
    if (!enrolled_) {
      auto id = agent_->state().DeviceId();
      if (!id.ok() && (!config_.enroll_secret_file().empty() || !config_.bundle_file().empty())) {
        Status s = agent_->EnrollFromConfig();
        if (!s.ok()) spdlog::error("enrollment failed: {}", s.message());
        ResetTransport();
        id = agent_->state().DeviceId();
      }
      if (!id.ok()) {
        spdlog::error("{}", id.status().message());
        Schedule(Backoff());
        return;
      }
      enrolled_ = true;
    }
    if (agent_->RotationPending() || agent_->CertificateNeedsRenewal()) {
      // An interrupted rotation must finish before anything is signed; a certificate that
      // expires within 30 days is renewed by rotating the key.
      Status s = agent_->RotateKey(*transport_);
      ResetTransport();
      if (!s.ok()) {
        spdlog::error("key rotation: {}", s.message());
        if (agent_->RotationPending()) {
          Schedule(Backoff());
          return;
        }
      }
    }
    // A collection is due every interval whether or not the server answers: while it is
    // unreachable, fresh evidence keeps accumulating in the outbox (in order).
    auto now = std::chrono::steady_clock::now();
    if (now >= next_collection_) {
      auto seq = agent_->CollectAndQueue();
      if (!seq.ok()) spdlog::error("collection failed: {}", seq.status().message());
      std::uniform_int_distribution<uint32_t> jitter(0, config_.jitter_seconds());
      next_collection_ = now + std::chrono::seconds(config_.interval_seconds() + jitter(rng_));
      agent_->NoteNextRun(
          clock_.NowMillis() +
          std::chrono::duration_cast<std::chrono::milliseconds>(next_collection_ - now).count());
    }
    auto flushed = agent_->Flush(*transport_);
    if (!flushed.ok()) {
      spdlog::warn("report failed, will retry: {}", flushed.status().message());
      auto retry = Backoff();
      auto until_collection = std::chrono::duration_cast<std::chrono::milliseconds>(
          next_collection_ - std::chrono::steady_clock::now());
      Schedule(std::max(std::chrono::milliseconds(0), std::min(retry, until_collection)));
      return;
    }
    failures_ = 0;
    spdlog::info("reported: {} acknowledged, {} rejected", flushed->acknowledged,
                 flushed->rejected);
    Schedule(std::max(std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          next_collection_ - std::chrono::steady_clock::now())));
  }

  // Retries: 5 s doubling to at most the interval, with jitter; the collection is not repeated.
  std::chrono::milliseconds Backoff() {
    failures_ = std::min(failures_ + 1, 16);
    int64_t base_ms = std::min<int64_t>(int64_t{5000} << (failures_ - 1),
                                        int64_t{config_.interval_seconds()} * 1000);
    std::uniform_int_distribution<int64_t> jitter(0, base_ms / 4);
    return std::chrono::milliseconds(base_ms + jitter(rng_));
  }

  boost::asio::io_context& io_;
  static constexpr std::chrono::milliseconds kEventSettle{250};

  boost::asio::steady_timer timer_;
  boost::asio::steady_timer event_timer_;
  boost::asio::signal_set signals_;
  UeventWatcher watcher_;
  ClockWatcher clock_watcher_;
  bool event_pending_ = false;
  std::function<Result<v1::AgentConfig>()> load_config_;
  std::mt19937_64 rng_;
  SystemClock clock_;
  v1::AgentConfig config_;
  std::unique_ptr<collectors::SystemView> view_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<Transport> transport_;
  bool enrolled_ = false;
  std::chrono::steady_clock::time_point next_collection_{};
  int failures_ = 0;
};

}  // namespace

int RunDaemon(const std::function<Result<v1::AgentConfig>()>& load_config) {
  auto config = load_config();
  if (!config.ok()) {
    spdlog::error("{}", config.status().message());
    return 2;
  }
  boost::asio::io_context io;
  Daemon daemon(io, load_config, std::move(config).value());
  daemon.Start();
  io.run();
  return 0;
}

}  // namespace vigil::agent

// Limits and counters for hostile input: a keyed token-bucket rate limiter (per device for
// reports, per peer address for failed authentication) and named counters of every acceptance
// and rejection, read by `vigilctl stats`. Both are thread-safe and take the injected clock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace vigil::server {

class RateLimiter {
 public:
  // `per_minute` tokens refill each minute up to `burst`. per_minute == 0 disables the limit.
  RateLimiter(const Clock& clock, uint32_t per_minute, uint32_t burst, size_t max_keys = 100000);

  // Takes one token for `key`; false when its bucket is empty.
  bool TryTake(const std::string& key);
  // True when `key` has at least one token, without taking it.
  bool HasToken(const std::string& key);

 private:
  struct Bucket {
    double tokens;
    int64_t at_ms;
  };
  Bucket& Refill(const std::string& key);

  const Clock& clock_;
  const double per_ms_;
  const double burst_;
  const size_t max_keys_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

class Counters {
 public:
  void Inc(const std::string& name, uint64_t n = 1);
  uint64_t Get(const std::string& name) const;
  std::vector<std::pair<std::string, uint64_t>> Snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> values_;
};

}  // namespace vigil::server

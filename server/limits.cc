#include "server/limits.h"

#include <algorithm>

namespace vigil::server {

RateLimiter::RateLimiter(const Clock& clock, uint32_t per_minute, uint32_t burst, size_t max_keys)
    : clock_(clock),
      per_ms_(per_minute / 60000.0),
      burst_(std::max<uint32_t>(burst, 1)),
      max_keys_(max_keys) {}

RateLimiter::Bucket& RateLimiter::Refill(const std::string& key) {
  int64_t now = clock_.NowMillis();
  if (buckets_.size() >= max_keys_ && buckets_.find(key) == buckets_.end()) {
    // Forget keys whose buckets have refilled: they carry no information.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      double t = it->second.tokens + static_cast<double>(now - it->second.at_ms) * per_ms_;
      it = t >= burst_ ? buckets_.erase(it) : std::next(it);
    }
  }
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted && now > b.at_ms) {
    b.tokens = std::min(burst_, b.tokens + static_cast<double>(now - b.at_ms) * per_ms_);
    b.at_ms = now;
  }
  return b;
}

bool RateLimiter::TryTake(const std::string& key) {
  if (per_ms_ <= 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& b = Refill(key);
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

bool RateLimiter::HasToken(const std::string& key) {
  if (per_ms_ <= 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  return Refill(key).tokens >= 1.0;
}

void Counters::Inc(const std::string& name, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[name] += n;
}

uint64_t Counters::Get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(name);
  return it == values_.end() ? 0 : it->second;
}

std::vector<std::pair<std::string, uint64_t>> Counters::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {values_.begin(), values_.end()};
}

}  // namespace vigil::server

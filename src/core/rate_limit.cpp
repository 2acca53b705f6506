#include "core/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace agentkv {

bool RateLimit::Take(const std::string& key, Clock::time_point now, int* retry_after) {
  if (per_minute_ <= 0) return true;
  const double capacity = per_minute_;
  const double per_second = capacity / 60.0;
  MutexLock lock(mu_);
  auto [it, added] = buckets_.try_emplace(key, Bucket{capacity, now});
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.tokens = std::min(capacity, b.tokens + std::max(0.0, elapsed) * per_second);
  b.updated = std::max(b.updated, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  *retry_after = std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / per_second)));
  return false;
}

}  // namespace agentkv

#pragma once
// A token bucket for each key (an API key's scope): `per_minute` tokens a
// minute, as many at once at most. Thread-safe. Keys are few (one per
// configured API key or tenant): buckets are never dropped.

#include <chrono>
#include <string>
#include <unordered_map>

#include "agentkv/mutex.h"

namespace agentkv {

class RateLimit {
 public:
  using Clock = std::chrono::steady_clock;
  // 0: no limit.
  explicit RateLimit(int per_minute) : per_minute_(per_minute) {}

  // Takes a token of `key`'s bucket: true, or false and in *retry_after the
  // whole seconds until one is there.
  bool Take(const std::string& key, Clock::time_point now, int* retry_after);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point updated;
  };
  const int per_minute_;
  Mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_ GUARDED_BY(mu_);
};

}  // namespace agentkv

#pragma once
// Time for code that waits on its own schedule (the upstream supervisor's
// health checks, backoffs and start deadlines), injected so that tests fire
// time instead of sleeping through it.

#include <chrono>
#include <condition_variable>

#include "agentkv/mutex.h"

namespace agentkv {

class WaitClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~WaitClock() = default;

  virtual TimePoint Now() = 0;
  // Blocks until `deadline` or a Wake(), whichever comes first. A Wake()
  // while nobody waits ends the next wait at once; it is consumed by that
  // wait. Meant for one waiting thread, which checks after every return why
  // it woke. Thread-safe.
  virtual void WaitUntil(TimePoint deadline) = 0;
  virtual void Wake() = 0;
};

// The steady clock; waits block for real.
class SteadyWaitClock final : public WaitClock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  void WaitUntil(TimePoint deadline) override {
    MutexLock lock(mu_);
    woken_cv_.wait_until(lock, deadline, [&]() REQUIRES(mu_) { return woken_; });
    woken_ = false;
  }
  void Wake() override {
    {
      MutexLock lock(mu_);
      woken_ = true;
    }
    woken_cv_.notify_all();
  }

 private:
  Mutex mu_;
  std::condition_variable_any woken_cv_;
  bool woken_ GUARDED_BY(mu_) = false;
};

}  // namespace agentkv

#pragma once
// Stand-ins for the UpstreamSupervisor's child process and clock: the test
// kills the child and fires time; nothing forks, nothing sleeps.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "agentkv/child_process.h"
#include "agentkv/wait_clock.h"

namespace agentkv::testing {

// How long a test waits (real time) for the watch thread before it fails
// instead of hanging. Never reached when the code is right.
inline constexpr std::chrono::seconds kBound{10};

class FakeChild final : public ChildProcess {
 public:
  Status Spawn() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++spawns_;
    if (crash_on_start_) {
      exit_pending_ = true;
      return Status::Ok();
    }
    pid_ = 1000 + spawns_;
    return Status::Ok();
  }
  void Stop(std::chrono::seconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++stops_;
    pid_ = -1;
  }
  bool Exited(int* wait_status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!exit_pending_) return false;
    exit_pending_ = false;
    *wait_status = 9;
    return true;
  }
  pid_t pid() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return pid_;
  }

  // It dies on its own (as after SIGKILL).
  void Die() {
    std::lock_guard<std::mutex> lock(mu_);
    pid_ = -1;
    exit_pending_ = true;
  }
  // From now on every start exits before it serves.
  void CrashOnStart() {
    std::lock_guard<std::mutex> lock(mu_);
    crash_on_start_ = true;
  }
  bool running() const { return pid() > 0; }
  int spawns() const {
    std::lock_guard<std::mutex> lock(mu_);
    return spawns_;
  }
  int stops() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stops_;
  }

 private:
  mutable std::mutex mu_;
  pid_t pid_ = -1;
  bool exit_pending_ = false;
  bool crash_on_start_ = false;
  int spawns_ = 0;
  int stops_ = 0;
};

// Time stands still until the test fires the wait the watch thread is in.
class FakeWaitClock final : public WaitClock {
 public:
  TimePoint Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void WaitUntil(TimePoint deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    waiting_until_ = deadline;
    waiter_cv_.notify_all();
    time_cv_.wait(lock, [&] { return woken_ || now_ >= deadline; });
    waiting_until_.reset();
    woken_ = false;
  }
  void Wake() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
    }
    time_cv_.notify_all();
  }

  // Blocks until the watch waits for a time still to come; returns how long
  // that wait is, or nullopt if it did not wait within kBound.
  std::optional<std::chrono::milliseconds> NextWait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!waiter_cv_.wait_for(lock, kBound, [&] { return Pending(); })) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(*waiting_until_ - now_);
  }
  // NextWait(), then moves time to its end; returns how long it was.
  std::optional<std::chrono::milliseconds> Fire() {
    std::optional<std::chrono::milliseconds> wait = NextWait();
    if (!wait) return wait;
    {
      std::lock_guard<std::mutex> lock(mu_);
      now_ += *wait;
    }
    time_cv_.notify_all();
    return wait;
  }

 private:
  bool Pending() const { return waiting_until_ && *waiting_until_ > now_ && !woken_; }

  std::mutex mu_;
  std::condition_variable time_cv_;    // now_ moved or woken_ was set
  std::condition_variable waiter_cv_;  // a wait began
  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
  std::optional<TimePoint> waiting_until_;
  bool woken_ = false;
};

}  // namespace agentkv::testing

#pragma once
// Thread-safe front of Residency: blocks a request until its tenant may
// proceed, within bounds (queue length and wait time). Never held across
// network I/O: callers run the returned Plan upstream without the lock.
// Safe for concurrent use from any number of threads.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "agentkv/residency.h"

namespace agentkv {

struct QueueLimits {
  int max_waiting = 64;                         // requests waiting for a slot
  std::chrono::milliseconds max_wait{120000};  // per request
};

class SlotPool {
 public:
  using NowFn = std::function<TimePoint()>;

  SlotPool(int n_slots, QueueLimits limits, NowFn now = &Clock::now);

  // Blocks until `tenant` may proceed and returns its plan. Returns kBusy if
  // the wait queue is full or the wait exceeds limits.max_wait.
  Result<Plan> Acquire(const Tenant& tenant);

  // See Residency::CompleteSwitch. Wakes waiters.
  Result<Placement> CompleteSwitch(const Plan& plan, const SwitchOutcome& outcome);

  // See Residency::Release. Wakes waiters.
  void Release(SlotId slot);

  void ForgetFile(const AgentId& agent);

  // Fails every waiting and future Acquire with kBusy. Irreversible.
  void Shutdown();

  int slot_count() const { return n_slots_; }
  int waiting() const;
  SlotView View(SlotId slot) const;
  std::optional<SlotId> SlotOf(const AgentId& agent) const;

 private:
  const int n_slots_;
  const QueueLimits limits_;
  const NowFn now_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  Residency residency_;  // guarded by mu_
  int waiting_ = 0;      // guarded by mu_
  bool shut_down_ = false;  // guarded by mu_
};

}  // namespace agentkv

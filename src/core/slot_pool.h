#pragma once
// Thread-safe front of Residency: blocks a request until its tenant may
// proceed, within bounds (queue length and wait time). Waiting requests are
// served as slots free up, first those of the API key holding the fewest
// slots (an agent's key is its namespace, "id@scope"; agents without one
// share a key), first come, first served within a key and among equals; a
// waiter whose own agent is still busy does not hold up those behind it, and
// a newcomer proceeds at once only with a slot that no waiter can use. One
// agent, and one key, may hold only a share of the queue's places, so an
// agent or a key that floods the queue cannot turn every other one away.
// Never held across network I/O: callers run the returned Plan upstream
// without the lock. Safe for concurrent use from any number of threads.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <vector>

#include "agentkv/mutex.h"
#include "core/residency.h"

namespace agentkv {

// A slot as a status view shows it: its state, and since when it has had
// its present phase and owner.
struct SlotStatus {
  SlotView view;
  TimePoint since{};
};

struct QueueLimits {
  int max_waiting = 64;                        // requests waiting for a slot
  std::chrono::milliseconds max_wait{120000};  // per request
  int max_waiting_per_agent = 8;               // of those, requests of one agent
  // Of those, requests of one API key; -1: three quarters of max_waiting
  // (at least 1), so that other keys always find room.
  int max_waiting_per_key = -1;
};

class SlotPool {
 public:
  using NowFn = std::function<TimePoint()>;

  // See Residency for `has_memory`, `max_pins` and `eviction`.
  SlotPool(int n_slots, QueueLimits limits, Residency::HasMemoryFn has_memory, int max_pins = 0,
           NowFn now = &Clock::now, Eviction eviction = Eviction::kLru);

  // Blocks until `tenant` may proceed and returns its plan. Returns kBusy if
  // the wait queue is full, or holds limits.max_waiting_per_agent requests
  // of this agent or limits.max_waiting_per_key of its key already, the
  // wait exceeds limits.max_wait, or the pool is shutting down.
  Result<Plan> Acquire(const Tenant& tenant);

  // See Residency. Each wakes waiters.
  void Supersede(SlotId slot);
  Result<Placement> CompleteSwitch(const Plan& plan, const SwitchOutcome& outcome);
  void Release(SlotId slot, const TurnEnd& end);
  std::optional<SaveJob> TryBeginSave(SlotId slot);
  void EndSave(SlotId slot, SaveResult result);
  void ResetAll(std::optional<SlotId> spare = std::nullopt);
  bool ResetAllIfSaved(std::optional<SlotId> spare = std::nullopt);
  void EndDrop(const AgentId& agent, std::optional<SlotId> slot, bool erased);

  // Blocks (within limits) until `agent` has nothing in flight, then holds
  // it until EndDrop and returns its slot if it is resident. kBusy on
  // timeout or shutdown.
  Result<std::optional<SlotId>> BeginDrop(const AgentId& agent);
  // Blocks (within limits) until `agent` has nothing in flight, then holds
  // it until EndHold; see Residency::TryBeginHold. kBusy on timeout or
  // shutdown.
  Result<std::optional<SaveJob>> BeginHold(const AgentId& agent);
  // BeginHold without waiting: nullopt if `agent` has something in flight
  // (or the pool is shutting down), else the held agent's save job, if any.
  std::optional<std::optional<SaveJob>> TryBeginHold(const AgentId& agent);
  void EndHold(const AgentId& agent);
  std::optional<SlotId> MarkDirty(const AgentId& agent);

  // Residency::TryBeginPrefetch, only while no request waits (a waiting
  // request gets every slot that frees up first), and not after Shutdown.
  // The plan is ended with CompleteSwitch.
  std::optional<Plan> TryBeginPrefetch();
  // Residency::NextAway.
  std::optional<AgentId> NextAway();
  // Bumped by every change of a slot; WaitForChange blocks until it is no
  // longer `seen`, or until `deadline`. Wake bumps it.
  long long version() const;
  void WaitForChange(long long seen, TimePoint deadline);
  void Wake();

  // Fails every waiting and future Acquire with kBusy. Irreversible.
  void Shutdown();

  Status Pin(const AgentId& agent);
  void Unpin(const AgentId& agent);
  bool Pinned(const AgentId& agent) const;

  int slot_count() const { return n_slots_; }
  TimePoint now() const { return now_(); }  // the pool's clock
  int waiting() const;
  std::vector<SlotId> DirtySlots() const;
  SlotView View(SlotId slot) const;
  // Every slot, taken under one lock (a consistent picture).
  std::vector<SlotStatus> Snapshot() const;
  std::optional<SlotId> SlotOf(const AgentId& agent) const;

 private:
  struct Waiter {
    const Tenant* tenant;
    std::optional<Plan> plan;  // set by DispatchLocked
  };

  // Runs `f` under the lock, hands out what it freed, then wakes waiters.
  template <typename F>
  auto Changing(F f);
  // Gives plans to queued waiters that can proceed, in NextWaiterLocked's
  // order.
  void DispatchLocked() REQUIRES(mu_);
  int WaitingOfLocked(const AgentId& agent) const REQUIRES(mu_);
  int WaitingOfKeyLocked(std::string_view key) const REQUIRES(mu_);
  // The waiter to serve next that can proceed now, and its plan: of the key
  // holding the fewest busy slots, the first to come. end() if none can.
  std::list<Waiter*>::iterator NextWaiterLocked(std::optional<Plan>* plan) REQUIRES(mu_);
  // Notes now as the `since` of each slot whose phase or owner changed.
  // Every call that may change a slot ends with it.
  void StampLocked() REQUIRES(mu_);

  const int n_slots_;
  const QueueLimits limits_;
  const NowFn now_;
  mutable Mutex mu_;
  std::condition_variable_any changed_;
  Residency residency_ GUARDED_BY(mu_);
  std::list<Waiter*> queue_ GUARDED_BY(mu_);        // arrival order
  std::vector<SlotStatus> stamps_ GUARDED_BY(mu_);  // as of the last StampLocked
  bool shut_down_ GUARDED_BY(mu_) = false;
  long long version_ GUARDED_BY(mu_) = 0;
};

}  // namespace agentkv

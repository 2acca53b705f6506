#include "core/slot_pool.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace agentkv {

SlotPool::SlotPool(int n_slots, QueueLimits limits, Residency::HasMemoryFn has_memory, int max_pins,
                   NowFn now, Eviction eviction)
    : n_slots_(n_slots),
      limits_(limits),
      now_(std::move(now)),
      residency_(n_slots, std::move(has_memory), max_pins, eviction) {
  MutexLock lock(mu_);
  const TimePoint start = now_();
  for (int i = 0; i < n_slots_; ++i) stamps_.push_back({residency_.View(SlotId{i}), start});
}

void SlotPool::StampLocked() {
  ++version_;
  std::optional<TimePoint> now;  // read once, and only if something changed
  for (int i = 0; i < n_slots_; ++i) {
    SlotStatus& s = stamps_[static_cast<size_t>(i)];
    const SlotView v = residency_.View(SlotId{i});
    if (v.phase != s.view.phase || v.owner != s.view.owner) {
      if (!now) now = now_();
      s.since = *now;
    }
    s.view = v;
  }
}

template <typename F>
auto SlotPool::Changing(F f) {
  struct Notify {
    std::condition_variable_any& cv;
    ~Notify() { cv.notify_all(); }
  } notify{changed_};
  MutexLock lock(mu_);
  struct DispatchOnExit {  // runs after f, still under the lock
    SlotPool* pool;
    ~DispatchOnExit() { pool->DispatchLocked(); }
  } dispatch{this};
  return f();
}

namespace {

// The API key whose namespace an agent is in ("" for none, and for a
// request without an agent).
std::string_view KeyOf(const Tenant& tenant) { return tenant ? tenant->ns() : std::string_view(); }

}  // namespace

void SlotPool::DispatchLocked() {
  if (!shut_down_) {
    for (;;) {
      std::optional<Plan> plan;
      auto next = NextWaiterLocked(&plan);
      if (next == queue_.end()) break;
      (*next)->plan = std::move(plan);
      queue_.erase(next);
    }
  }
  StampLocked();
}

std::list<SlotPool::Waiter*>::iterator SlotPool::NextWaiterLocked(std::optional<Plan>* plan) {
  std::unordered_map<std::string_view, int> held;  // slots each key's requests hold
  for (int i = 0; i < n_slots_; ++i) {
    const SlotView v = residency_.View(SlotId{i});
    if (v.phase == SlotPhase::kBusy || v.phase == SlotPhase::kSwitching) ++held[KeyOf(v.owner)];
  }
  std::vector<std::list<Waiter*>::iterator> order;
  for (auto it = queue_.begin(); it != queue_.end(); ++it) order.push_back(it);
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return held[KeyOf(*(*a)->tenant)] < held[KeyOf(*(*b)->tenant)];
  });
  const TimePoint now = now_();
  for (auto it : order) {
    if ((*plan = residency_.TryAcquire(*(*it)->tenant, now))) return it;
  }
  return queue_.end();
}

int SlotPool::WaitingOfLocked(const AgentId& agent) const {
  int n = 0;
  for (const Waiter* w : queue_) n += *w->tenant == agent ? 1 : 0;
  return n;
}

int SlotPool::WaitingOfKeyLocked(std::string_view key) const {
  int n = 0;
  for (const Waiter* w : queue_) n += KeyOf(*w->tenant) == key ? 1 : 0;
  return n;
}

Result<Plan> SlotPool::Acquire(const Tenant& tenant) {
  const Status shutting_down = Status::Error(ErrorCode::kBusy, "agentkv is shutting down");
  MutexLock lock(mu_);
  if (shut_down_) return shutting_down;
  // Every change that frees a slot ends with DispatchLocked(), so no waiter can
  // proceed right now: a newcomer that can takes nothing a waiter could use.
  if (std::optional<Plan> plan = residency_.TryAcquire(tenant, now_())) {
    StampLocked();
    return *plan;
  }
  if (static_cast<int>(queue_.size()) >= limits_.max_waiting) {
    return Status::Error(ErrorCode::kBusy, "all " + std::to_string(n_slots_) +
                                               " slots are busy and the wait queue is full");
  }
  if (tenant && WaitingOfLocked(*tenant) >= limits_.max_waiting_per_agent) {
    return Status::Error(ErrorCode::kBusy, "agent " + tenant->str() + " already has " +
                                               std::to_string(limits_.max_waiting_per_agent) +
                                               " requests waiting; its requests run one at a time");
  }
  const int per_key = limits_.max_waiting_per_key >= 0 ? limits_.max_waiting_per_key
                                                       : std::max(1, limits_.max_waiting * 3 / 4);
  if (WaitingOfKeyLocked(KeyOf(tenant)) >= per_key) {
    return Status::Error(ErrorCode::kBusy,
                         "this API key already has " + std::to_string(per_key) +
                             " requests waiting for a slot: the rest of the queue is other keys'");
  }
  Waiter me{&tenant, std::nullopt};
  queue_.push_back(&me);
  struct Dequeue {  // on every way out, under the lock (declared after it)
    std::list<Waiter*>& queue;
    Waiter* waiter;
    ~Dequeue() { queue.remove(waiter); }
  } dequeue{queue_, &me};
  changed_.wait_for(lock, limits_.max_wait, [&]() REQUIRES(mu_) { return me.plan || shut_down_; });
  if (me.plan) return *me.plan;
  if (shut_down_) return shutting_down;
  return Status::Error(ErrorCode::kBusy, "no slot became free within " +
                                             std::to_string(limits_.max_wait.count()) + " ms");
}

Result<std::optional<SlotId>> SlotPool::BeginDrop(const AgentId& agent) {
  MutexLock lock(mu_);
  std::optional<SlotId> slot;
  bool wait = true;
  changed_.wait_for(lock, limits_.max_wait, [&]() REQUIRES(mu_) {
    if (shut_down_) return true;
    slot = residency_.TryBeginDrop(agent, &wait);
    return !wait;
  });
  if (wait) return Status::Error(ErrorCode::kBusy, "agent " + agent.str() + " stayed busy");
  StampLocked();
  return slot;
}

Result<std::optional<SaveJob>> SlotPool::BeginHold(const AgentId& agent) {
  MutexLock lock(mu_);
  std::optional<std::optional<SaveJob>> held;
  bool wait = true;
  changed_.wait_for(lock, limits_.max_wait, [&]() REQUIRES(mu_) {
    if (shut_down_) return true;
    held = residency_.TryBeginHold(agent, &wait);
    return !wait;
  });
  if (wait) return Status::Error(ErrorCode::kBusy, "agent " + agent.str() + " stayed busy");
  StampLocked();
  return *held;
}

std::optional<std::optional<SaveJob>> SlotPool::TryBeginHold(const AgentId& agent) {
  MutexLock lock(mu_);
  if (shut_down_) return std::nullopt;
  bool wait = true;
  std::optional<std::optional<SaveJob>> held = residency_.TryBeginHold(agent, &wait);
  if (wait) return std::nullopt;
  StampLocked();
  return held;
}

std::optional<SlotId> SlotPool::MarkDirty(const AgentId& agent) {
  MutexLock lock(mu_);
  return residency_.MarkDirty(agent);
}

void SlotPool::EndHold(const AgentId& agent) {
  Changing([&]() REQUIRES(mu_) { residency_.EndHold(agent); });
}

void SlotPool::Supersede(SlotId slot) {
  MutexLock lock(mu_);
  residency_.Supersede(slot);
}

Result<Placement> SlotPool::CompleteSwitch(const Plan& plan, const SwitchOutcome& outcome) {
  return Changing([&]() REQUIRES(mu_) { return residency_.CompleteSwitch(plan, outcome); });
}

void SlotPool::Release(SlotId slot, const TurnEnd& end) {
  Changing([&]() REQUIRES(mu_) { residency_.Release(slot, now_(), end); });
}

std::optional<SaveJob> SlotPool::TryBeginSave(SlotId slot) {
  MutexLock lock(mu_);
  std::optional<SaveJob> job = residency_.TryBeginSave(slot);
  StampLocked();
  return job;
}

void SlotPool::EndSave(SlotId slot, SaveResult result) {
  Changing([&]() REQUIRES(mu_) { residency_.EndSave(slot, result); });
}

void SlotPool::ResetAll(std::optional<SlotId> spare) {
  Changing([&]() REQUIRES(mu_) { residency_.ResetAll(spare); });
}

bool SlotPool::ResetAllIfSaved(std::optional<SlotId> spare) {
  return Changing([&]() REQUIRES(mu_) { return residency_.ResetAllIfSaved(spare); });
}

void SlotPool::EndDrop(const AgentId& agent, std::optional<SlotId> slot, bool erased) {
  Changing([&]() REQUIRES(mu_) { residency_.EndDrop(agent, slot, erased); });
}

std::optional<Plan> SlotPool::TryBeginPrefetch() {
  return Changing([&]() REQUIRES(mu_) -> std::optional<Plan> {
    if (shut_down_ || !queue_.empty()) return std::nullopt;
    return residency_.TryBeginPrefetch(now_());
  });
}

std::optional<AgentId> SlotPool::NextAway() {
  MutexLock lock(mu_);
  if (shut_down_) return std::nullopt;
  return residency_.NextAway(now_());
}

long long SlotPool::version() const {
  MutexLock lock(mu_);
  return version_;
}

void SlotPool::WaitForChange(long long seen, TimePoint deadline) {
  MutexLock lock(mu_);
  changed_.wait_until(lock, deadline, [&]() REQUIRES(mu_) { return version_ != seen; });
}

void SlotPool::Wake() {
  {
    MutexLock lock(mu_);
    ++version_;
  }
  changed_.notify_all();
}

void SlotPool::Shutdown() {
  Changing([&]() REQUIRES(mu_) { shut_down_ = true; });
}

Status SlotPool::Pin(const AgentId& agent) {
  MutexLock lock(mu_);
  return residency_.Pin(agent);
}

void SlotPool::Unpin(const AgentId& agent) {
  Changing([&]() REQUIRES(mu_) { residency_.Unpin(agent); });
}

bool SlotPool::Pinned(const AgentId& agent) const {
  MutexLock lock(mu_);
  return residency_.Pinned(agent);
}

int SlotPool::waiting() const {
  MutexLock lock(mu_);
  return static_cast<int>(queue_.size());
}

std::vector<SlotId> SlotPool::DirtySlots() const {
  MutexLock lock(mu_);
  return residency_.DirtySlots();
}

SlotView SlotPool::View(SlotId slot) const {
  MutexLock lock(mu_);
  return residency_.View(slot);
}

std::vector<SlotStatus> SlotPool::Snapshot() const {
  MutexLock lock(mu_);
  std::vector<SlotStatus> out = stamps_;
  for (int i = 0; i < n_slots_; ++i) out[static_cast<size_t>(i)].view = residency_.View(SlotId{i});
  return out;
}

std::optional<SlotId> SlotPool::SlotOf(const AgentId& agent) const {
  MutexLock lock(mu_);
  return residency_.SlotOf(agent);
}

}  // namespace agentkv

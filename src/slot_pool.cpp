#include "agentkv/slot_pool.h"

#include <string>

namespace agentkv {

SlotPool::SlotPool(int n_slots, QueueLimits limits, NowFn now)
    : n_slots_(n_slots), limits_(limits), now_(std::move(now)), residency_(n_slots) {}

Result<Plan> SlotPool::Acquire(const Tenant& tenant) {
  const Status shutting_down =
      Status::Error(ErrorCode::kBusy, "agentkv is shutting down");
  std::unique_lock<std::mutex> lock(mu_);
  if (shut_down_) return shutting_down;
  if (std::optional<Plan> plan = residency_.TryAcquire(tenant)) return *plan;
  if (waiting_ >= limits_.max_waiting) {
    return Status::Error(ErrorCode::kBusy,
                         "all " + std::to_string(n_slots_) +
                             " slots are busy and the wait queue is full");
  }
  ++waiting_;
  std::optional<Plan> plan;
  changed_.wait_for(lock, limits_.max_wait, [&] {
    if (shut_down_) return true;
    plan = residency_.TryAcquire(tenant);
    return plan.has_value();
  });
  --waiting_;
  if (plan) return *plan;
  if (shut_down_) return shutting_down;
  return Status::Error(ErrorCode::kBusy, "no slot became free within " +
                                             std::to_string(limits_.max_wait.count()) +
                                             " ms");
}

Result<Placement> SlotPool::CompleteSwitch(const Plan& plan,
                                           const SwitchOutcome& outcome) {
  Result<Placement> placement = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return residency_.CompleteSwitch(plan, outcome);
  }();
  changed_.notify_all();
  return placement;
}

void SlotPool::Release(SlotId slot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    residency_.Release(slot, now_());
  }
  changed_.notify_all();
}

void SlotPool::ForgetFile(const AgentId& agent) {
  std::lock_guard<std::mutex> lock(mu_);
  residency_.ForgetFile(agent);
}

void SlotPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shut_down_ = true;
  }
  changed_.notify_all();
}

int SlotPool::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

SlotView SlotPool::View(SlotId slot) const {
  std::lock_guard<std::mutex> lock(mu_);
  return residency_.View(slot);
}

std::optional<SlotId> SlotPool::SlotOf(const AgentId& agent) const {
  std::lock_guard<std::mutex> lock(mu_);
  return residency_.SlotOf(agent);
}

}  // namespace agentkv

#include "core/save_scheduler.h"

#include <algorithm>

namespace agentkv {

using Steady = std::chrono::steady_clock;

SaveScheduler::PrefillTicket& SaveScheduler::PrefillTicket::operator=(
    PrefillTicket&& other) noexcept {
  if (this != &other) {
    End();
    saves_ = std::exchange(other.saves_, nullptr);
  }
  return *this;
}

void SaveScheduler::PrefillTicket::End() {
  if (saves_) std::exchange(saves_, nullptr)->EndPrefill();
}

SaveScheduler::SaveScheduler(SaveDeferral deferral, std::function<void(SlotId)> save,
                             Metrics& metrics)
    : deferral_{std::min(deferral.grace, deferral.bound), deferral.bound},
      save_(std::move(save)),
      metrics_(metrics) {
  thread_ = std::thread([this] { Loop(); });
}

SaveScheduler::~SaveScheduler() { Stop(); }

void SaveScheduler::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SaveScheduler::PrefillTicket SaveScheduler::Prefilling() {
  {
    MutexLock lock(mu_);
    ++prefilling_;
    ++arrivals_;
  }
  changed_.notify_all();  // ends a save's grace
  return PrefillTicket(this);
}

bool SaveScheduler::AnyPrefilling() const {
  MutexLock lock(mu_);
  return prefilling_ > 0;
}

void SaveScheduler::EndPrefill() {
  {
    MutexLock lock(mu_);
    if (--prefilling_ > 0) return;
  }
  changed_.notify_all();
}

void SaveScheduler::Schedule(SlotId slot, std::optional<Steady::time_point> delayed_until) {
  {
    MutexLock lock(mu_);
    const auto due = delayed_until.value_or(Steady::now());
    // Delayed: the grace counts from when it is due (arrivals then).
    const long long arrivals = delayed_until ? -1 : arrivals_;
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [&](const QueuedSave& q) { return q.slot == slot; });
    if (queued == queue_.end()) {
      queue_.push_back({slot, due, arrivals});
    } else if (due < queued->due) {  // one save covers both
      *queued = {slot, due, arrivals};
    }
    ++scheduled_;
  }
  changed_.notify_all();
}

void SaveScheduler::Loop() {
  MutexLock lock(mu_);
  while (true) {
    changed_.wait(lock, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto next = std::min_element(queue_.begin(), queue_.end(),
                                 [](const auto& a, const auto& b) { return a.due < b.due; });
    const auto now = Steady::now();
    if (next->due > now && draining_ == 0) {  // a delayed save: wait, or take an earlier one
      const long long seen = scheduled_;
      changed_.wait_until(lock, next->due, [&]() REQUIRES(mu_) {
        return stopping_ || draining_ > 0 || scheduled_ != seen;
      });
      continue;
    }
    const bool delayed = next->arrivals < 0;
    if (delayed) *next = {next->slot, now, arrivals_};
    // See SaveDeferral. A slot taken meanwhile (evicted, or its agent back)
    // is saved or skipped by `save_` as usual. `next` stays valid: only
    // this thread removes entries, and a list's others do not move.
    const QueuedSave entry = *next;
    changed_.wait_until(lock, entry.due + deferral_.grace, [&]() REQUIRES(mu_) {
      return stopping_ || arrivals_ != entry.arrivals || prefilling_ > 0 || draining_ > 0;
    });
    const bool waited_for_prefill = prefilling_ > 0 && draining_ == 0;
    changed_.wait_until(lock, entry.due + deferral_.bound, [&]() REQUIRES(mu_) {
      return stopping_ || prefilling_ == 0 || draining_ > 0;
    });
    if (stopping_) return;
    if (delayed || waited_for_prefill) ++metrics_.saves_deferred;
    queue_.erase(next);
    saving_ = true;
    lock.unlock();
    save_(entry.slot);
    lock.lock();
    saving_ = false;
    changed_.notify_all();
  }
}

void SaveScheduler::Drain() {
  MutexLock lock(mu_);
  ++draining_;
  changed_.notify_all();
  changed_.wait(lock, [&]() REQUIRES(mu_) { return stopping_ || (queue_.empty() && !saving_); });
  --draining_;
}

}  // namespace agentkv

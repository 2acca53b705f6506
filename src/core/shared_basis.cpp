#include "core/shared_basis.h"

#include <spdlog/spdlog.h>

namespace agentkv {

void SharedBasis::Reconcile(Plan* plan) {
  const AgentId& agent = *plan->tenant;
  const std::string newest = store_.Refresh(agent).value_or("");
  if (plan->resident) {
    std::string basis;
    {
      MutexLock lock(mu_);
      auto it = basis_.find(agent);
      if (it != basis_.end()) basis = it->second;
    }
    if (basis != newest) {
      ++metrics_.superseded;
      spdlog::info(
          "agent {}: slot {} holds an older memory than the shared directory's ({}): "
          "restoring that one",
          agent.ForLog(), plan->slot.value, newest.empty() ? "deleted" : newest);
      pool_.Supersede(plan->slot);
      plan->resident = false;
      plan->restore = !newest.empty();
      plan->erase = newest.empty();
    }
  } else if (plan->restore && newest.empty()) {  // deleted by another node
    plan->restore = false;
    plan->erase = true;
  } else if (!plan->restore && !newest.empty()) {  // saved by another node
    plan->restore = true;
    plan->erase = false;  // the restore replaces the slot's KV, or fails and erases
  }
  MutexLock lock(mu_);
  basis_[agent] = newest;
  if (plan->evicted) basis_.erase(*plan->evicted);
}

void SharedBasis::Saved(const AgentId& agent, const std::string& state_file) {
  MutexLock lock(mu_);
  if (auto it = basis_.find(agent); it != basis_.end()) it->second = state_file;
}

void SharedBasis::Forget(const AgentId& agent) {
  MutexLock lock(mu_);
  basis_.erase(agent);
}

}  // namespace agentkv

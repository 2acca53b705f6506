#pragma once
// A memory directory shared with other agentkv nodes (store.h): for each
// agent placed here, the state file of the memory its slot's KV accounts
// for ("" if none), compared with the directory's newest before a resident
// agent is served, since another node may have served it meanwhile.
// Thread-safe; Reconcile reads the directory without a lock held.

#include <string>
#include <unordered_map>

#include "agentkv/mutex.h"
#include "core/metrics.h"
#include "core/slot_pool.h"
#include "store/store.h"

namespace agentkv {

class SharedBasis {
 public:
  SharedBasis(SlotPool& pool, Store& store, Metrics& metrics)
      : pool_(pool), store_(store), metrics_(metrics) {}

  // Reads the plan's agent's memory in the directory and amends the plan: a
  // resident slot older than that memory is superseded (SlotPool::Supersede),
  // a memory found or gone turns an erase into a restore or back. Records
  // what the slot will account for, and forgets the evicted agent's.
  void Reconcile(Plan* plan);
  // A save of `agent`'s slot wrote `state_file`: the slot's KV is that
  // memory now (if the agent was placed here).
  void Saved(const AgentId& agent, const std::string& state_file);
  void Forget(const AgentId& agent);

 private:
  SlotPool& pool_;
  Store& store_;
  Metrics& metrics_;
  Mutex mu_;
  std::unordered_map<AgentId, std::string> basis_ GUARDED_BY(mu_);
};

}  // namespace agentkv

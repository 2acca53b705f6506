#pragma once
// The memory operations of the lifecycle API, apart from turns: forgetting
// an agent, forking one agent's memory into another, and the prefix
// snapshots a request builds in its own slot. Each holds the agents it
// touches in the SlotPool (their requests wait) while it runs its upstream
// and store steps without a lock, and leaves saving, placing and judging
// slots to the Placer. Thread-safe.

#include <condition_variable>
#include <functional>
#include <optional>
#include <unordered_set>

#include "agentkv/mutex.h"
#include "agentkv/slot_actions.h"
#include "core/metrics.h"
#include "core/placer.h"
#include "core/slot_pool.h"
#include "store/store.h"

namespace agentkv {

class MemoryOps {
 public:
  MemoryOps(SlotPool& pool, SlotActions& upstream, Store& store, Placer& placer, Metrics& metrics)
      : pool_(pool), upstream_(upstream), store_(store), placer_(placer), metrics_(metrics) {}
  ~MemoryOps() { Stop(); }

  // Writes the KV of `lease`'s slot (which the caller has just filled with
  // exactly `tokens` tokens of a shared prefix) to the prefix snapshot
  // `snapshot`. False if it could not, or if the slot held any other count
  // (nothing is committed then); the lease's agent is not affected.
  // `from`: the agent whose memory the slot was filled from (RestoreFrom).
  bool SaveSnapshot(const Lease& lease, const AgentId& snapshot, long long tokens,
                    PromptKey prompt_key, const std::optional<AgentId>& from = std::nullopt);

  // Fills `lease`'s slot, placed cold, with `source`'s memory (saving its
  // latest turn first), so that a prefix snapshot of tokens they share can
  // be built from KV already computed instead of a prefill from nothing.
  // The slot then holds `source`'s tokens, private ones too: the caller
  // must cut it back to the shared tokens or Wipe it before its agent's
  // request runs. Does not wait: false, with nothing of `source` in the
  // slot, if `source` is busy, has no memory, or the restore failed; an
  // error if the slot may hold some of it and could not be erased.
  Result<bool> RestoreFrom(const Lease& lease, const AgentId& source);
  // Erases `lease`'s slot; false if llama-server did not.
  bool Wipe(const Lease& lease);

  // Erases the agent's slot if resident, deletes its files and unpins it.
  // Returns kNotFound if agentkv knew nothing of it.
  Status Forget(const AgentId& agent);
  // Gives `child` a copy of `parent`'s memory (saving the parent first).
  // Waits (up to two minutes, kBusy after) while another fork copies from
  // or into either of them.
  Status Fork(const AgentId& parent, const AgentId& child);

  // Forks waiting for each other give up (kBusy); the others finish.
  void Stop();

 private:
  // Holds `agent` (its requests wait), erases its slot if resident, runs
  // `then` and releases it: nothing of the agent can be restored meanwhile.
  Status Dropping(const AgentId& agent, bool* had_memory, const std::function<Status()>& then);
  // A held agent's file may have failed its check and be gone: its slot is
  // its memory then, to be saved again.
  void ResaveIfFileGone(const AgentId& agent);

  SlotPool& pool_;
  SlotActions& upstream_;
  Store& store_;
  Placer& placer_;
  Metrics& metrics_;

  Mutex mu_;
  bool stopping_ GUARDED_BY(mu_) = false;
  // Agents a fork is copying from or into. A fork waits on forks_changed_
  // until neither of its agents is in another fork, so that two forks
  // crossing (a into b, b into a) never hold one agent each.
  std::unordered_set<AgentId> forking_ GUARDED_BY(mu_);
  std::condition_variable_any forks_changed_;
};

}  // namespace agentkv

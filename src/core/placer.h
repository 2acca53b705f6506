#pragma once
// Gets a tenant's KV into a slot and agents' KV onto disk. Asks the SlotPool
// for a plan, runs its upstream steps (save the evicted agent, check and
// restore the arriving agent's file, or erase) without holding any lock, and
// reports the outcome back. Also saves slots (turn-end saves, when
// SaveScheduler says; idle and dirty slots at a stop) and restores agents
// expected back ahead of their requests on a thread of its own. The memory
// operations of the lifecycle API are MemoryOps' (memory_ops.h), on top of
// this; a shared directory's check of resident slots is SharedBasis'.
// Thread-safe.

#include <chrono>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "agentkv/mutex.h"
#include "agentkv/slot_actions.h"
#include "core/lease.h"
#include "core/metrics.h"
#include "core/save_scheduler.h"
#include "core/shared_basis.h"
#include "core/slot_pool.h"
#include "store/store.h"

namespace agentkv {

// When resident agents' KV is written to disk.
enum class SavePolicy {
  kTurnEnd,   // after every turn, off the request path: evictions only restore
  kEviction,  // only when the slot is needed: fewer writes, less durable
};

// When a request that reuses none of a slot holding its prompt's start is
// evidence that the slot's KV was lost. Not for recurrent and hybrid models,
// whose state cannot be cut back (llama-server recomputes everything for a
// prompt that diverges anywhere from it), nor after a restore for sliding-
// window models, whose slot file keeps only the window of those layers.
struct ReuseChecks {
  bool after_restore = true;  // else: a restore is never judged by its reuse
  bool resident = true;       // else: a resident slot is never judged so
};

// What agentkv does with what turns say of agents' returns (TurnEnd::expect).
struct ReturnAware {
  // Restores an evicted agent expected back into a slot before its request
  // (Residency::TryBeginPrefetch), while no request waits or is prefilling,
  // and asks the kernel to read the file of the one expected back first
  // into the page cache when no slot is open to it; a done agent's file is
  // let go from the page cache once saved.
  bool prefetch = false;
  // Turn-end policy: a turn after which its agent is expected back within
  // `save_delay` is not saved at its end but once the oldest turn its file
  // lacks is `save_delay` old (or when its slot is needed, or at a graceful
  // stop): an agent in a run of tool calls is written once per run, not
  // once per turn. A crash then costs at most that many seconds of its
  // turns: they are prefilled again. 0: every turn is saved at its end.
  std::chrono::milliseconds save_delay{0};
};

// A copy of the placement counters (see Metrics).
struct PlacerStats {
  long long restores = 0, saves = 0, save_failures = 0, evictions = 0;
  long long fallbacks = 0;  // restores not done or not trusted: normal prefill
  long long resets = 0;     // times llama-server was found to have lost the slots
};

class Placer {
 public:
  // See SaveScheduler::PrefillTicket.
  using PrefillTicket = SaveScheduler::PrefillTicket;

  // Turn-end saves wait for requests' first tokens as `deferral` says.
  Placer(SlotPool& pool, SlotActions& upstream, Store& store, SavePolicy policy, Metrics& metrics,
         ReuseChecks checks = {}, SaveDeferral deferral = {}, ReturnAware aware = {});
  ~Placer();

  // Opens a ticket for a request that just arrived; see PrefillTicket.
  PrefillTicket Prefilling();

  // Blocks until `tenant` holds a slot with its KV in place (restored, or
  // erased for a cold start). Returns kBusy past the queue bounds, and
  // kUpstream* if llama-server left the slot in a state the tenant must not
  // use. A failed or untrusted restore is not an error: the request falls
  // back to a normal prefill. Only a file proven bad is quarantined: a
  // restore that failed in transport, timed out or was refused leaves it in
  // place (a file refused kMaxRefusals times in a row is quarantined).
  // A tenant that holds a slot but has neither KV in it nor a file of its
  // own starts from the memory `start_from` names (a prefix snapshot), if
  // that one has a file: placement kPrefix. `start_from` is asked once the
  // slot is granted, without locks, so that it sees snapshots written while
  // the tenant waited.
  using StartFrom = std::function<std::optional<AgentId>()>;
  Result<Lease> Place(const Tenant& tenant, const StartFrom& start_from = {});

  // The response on `lease` is complete: `cache_n` and `prompt_n` are what
  // llama-server reported reusing and computing (nullopt/0 if unknown), `end`
  // what the request left in the slot. A slot that held KV for the same
  // prompt key and reused none of it is evidence: a restored file is
  // quarantined, a resident slot means llama-server lost its slots.
  // Releases the lease and schedules the save.
  void Finish(Lease& lease, std::optional<long long> cache_n, long long prompt_n,
              const TurnEnd& end);

  // Saves the agent idle in `slot` if its KV is newer than its file.
  // Returns false if a save was needed and failed (an empty slot counts as
  // failed: nothing was saved). A save that finds a slot empty whose KV
  // agentkv knew to be there concludes llama-server lost its slots.
  bool SaveIdle(SlotId slot);
  // Saves every dirty idle agent, least recently used first, until
  // `deadline` (graceful shutdown). Returns how many were left unsaved (a
  // slot found empty held nothing to save and is not counted).
  int SaveAllDirty(std::chrono::steady_clock::time_point deadline =
                       std::chrono::steady_clock::time_point::max());

  // Writes the KV of `job`'s slot, which the caller holds (a lease, a
  // hold), to a new generation of `job.agent`'s file; the slot's state is
  // the caller's to change. With `job.exact`, a slot holding any other
  // count than job.tokens writes nothing (kFailed).
  SaveResult WriteSlot(const SaveJob& job) { return SaveSlot(job); }
  // Saves the job a hold was given (SlotPool::BeginHold) and ends the save.
  SaveResult SaveHeld(const SaveJob& job) { return RunSave(job, false); }
  // Queues a turn-end save of `slot` (SaveScheduler::Schedule), due at
  // `delayed_until` if given; nothing under the eviction policy.
  void ScheduleSave(SlotId slot,
                    std::optional<std::chrono::steady_clock::time_point> delayed_until = {});
  // The agent's memory is gone (MemoryOps::Forget): forgets what placement
  // kept of it (refused restores, a shared directory's basis).
  void Forgotten(const AgentId& agent);

  // llama-server lost every slot's KV (it restarted): saves the dirty idle
  // agents first wherever llama-server still answers (a slot found empty
  // keeps its agent's older file), then forgets what every slot but `spare`
  // (one whose KV was computed since) holds.
  void ResetSlots(const std::string& why, std::optional<SlotId> spare = std::nullopt);

  // Restores llama-server refused of a file in a row before it is quarantined.
  static constexpr int kMaxRefusals = 3;

  PlacerStats stats() const;
  // Blocks until no turn-end save is queued or running (tests, shutdown);
  // saves queued meanwhile no longer wait for prefills, nor for a delay.
  void DrainSaves();
  // Runs one restore ahead of a request if one is due (see ReturnAware);
  // returns whether it ran one. The prefetch thread's step, public for tests.
  bool PrefetchOnce();
  void Stop();

 private:
  // Where a placement's time went, in ms, for one debug line per placement
  // (the cost of a returning turn, step by step). Save and commit are the
  // evicted agent's; check is the store's look at the file before restore.
  struct StepTimes {
    double wait = 0, save = 0, commit = 0, check = 0, restore = 0, erase = 0;
  };
  SwitchOutcome Run(const Plan& plan, Status* erase_error, StepTimes* steps);
  void Restore(const Plan& plan, SwitchOutcome* out, StepTimes* steps);
  SaveResult SaveSlot(const SaveJob& job, StepTimes* steps = nullptr);
  // Runs `job` (its slot is Saving) and ends it; judges an empty slot if asked.
  SaveResult RunSave(const SaveJob& job, bool judge_empty);
  // When a turn-end save of `slot` may wait for, after `end` (see
  // ReturnAware::save_delay); nullopt: at once.
  std::optional<std::chrono::steady_clock::time_point> SaveDelay(SlotId slot,
                                                                 const TurnEnd& end) const;
  void PrefetchLoop();

  SlotPool& pool_;
  SlotActions& upstream_;
  Store& store_;
  const SavePolicy policy_;
  Metrics& metrics_;
  const ReuseChecks checks_;
  const ReturnAware aware_;

  mutable Mutex mu_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::unordered_map<AgentId, int> refusals_ GUARDED_BY(mu_);  // restores refused in a row
  SharedBasis basis_;  // a shared directory's: what each resident slot accounts for
  // Last: its thread calls SaveIdle, which needs every member above.
  SaveScheduler saves_;
  std::thread prefetcher_;  // with aware_.prefetch
};

}  // namespace agentkv

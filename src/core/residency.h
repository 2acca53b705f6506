#pragma once
// The residency core: which agent's KV lives in which llama-server slot, and
// what must happen upstream before a request can run. It decides; it does no
// I/O and takes no locks. Not thread-safe: SlotPool serializes access.
//
// A slot is Free (maybe holding stale KV nobody owns), Idle (an agent's KV,
// clean or dirty), Busy (a request runs on it) or Switching (its plan is being
// executed upstream). Requests of one agent are serialized; an arriving agent
// takes a free slot, else evicts an idle agent: the least recently used, or
// (Eviction::kPredicted) the one least likely to be back soon.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_set>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/status.h"
#include "core/away_list.h"
#include "core/slot_types.h"

namespace agentkv {

class Residency {
 public:
  using HasMemoryFn = std::function<bool(const AgentId&)>;

  // All slots start Free and stale: agentkv cannot know what an upstream it
  // did not start holds, and an erase costs almost nothing. `has_memory`
  // says whether an agent has a file to restore (the store's index); it is
  // called under the caller's lock and must not call back. At most
  // `max_pins` agents (at most n_slots - 1) may be pinned.
  Residency(int n_slots, HasMemoryFn has_memory, int max_pins = 0,
            Eviction eviction = Eviction::kLru);

  int slot_count() const { return static_cast<int>(slots_.size()); }

  // Returns the plan to run if `tenant` may proceed now, with its slot marked
  // Switching. Returns nullopt if it must wait: the agent has a request or a
  // save in flight, or no slot is free or idle and unpinned.
  std::optional<Plan> TryAcquire(const Tenant& tenant, TimePoint now = Clock::now());

  // Restoring an agent ahead of its request. The evicted agent expected
  // back soonest (not overdue, with a file, nothing in flight) gets a free
  // slot, or the idle slot eviction would take first if that slot's agent
  // is gone: done, or overdue as expected back. Never the slot of an agent
  // that may be back first: one waiting for a person (who may answer at
  // any moment), one whose turn said nothing, one expected back, even
  // later (restores ahead that took such slots cost more restores on the
  // request path than they saved: docs/benchmark.md, scenario 11). The
  // plan has `prefetch` set, its slot Switching. CompleteSwitch then leaves
  // the slot Idle and clean, with the restored agent's expectation. An
  // agent is remembered as away when it is evicted while expected back; at
  // most kMaxAway are, each until it is placed or overdue, and a prefetched
  // agent evicted unused is not remembered again until its next turn.
  // nullopt if nothing qualifies.
  std::optional<Plan> TryBeginPrefetch(TimePoint now);
  // The agent TryBeginPrefetch would restore first, whether or not a slot
  // is open to it (to read its file into the page cache ahead), once each
  // time it is away: nullopt if none, or if it was named already.
  std::optional<AgentId> NextAway(TimePoint now);
  static constexpr int kMaxAway = AwayList::kMaxAway;

  // A resident plan's slot holds its agent's KV, but older than the agent's
  // memory (another node of a shared directory served it since): forgets
  // that KV. The plan must then restore or erase, as for a new arrival.
  void Supersede(SlotId slot);

  // Records what the plan achieved and returns how the tenant was placed;
  // the slot turns Busy. Returns kUpstreamError if the slot holds KV the
  // tenant must not see (the needed erase failed); the slot is then Free and
  // stale, and the request must not run.
  Result<Placement> CompleteSwitch(const Plan& plan, const SwitchOutcome& outcome);

  // The request on `slot` ended (whatever its outcome), as `end` says. An
  // agent's slot turns Idle, used at `now`, with what `end` expects of its
  // return, and dirty if its KV changed,
  // unless the KV was its file's and the turn added nothing to it (no save
  // would write anything the file lacks); a stateless slot, or one
  // llama-server lost meanwhile, turns Free and stale.
  void Release(SlotId slot, TimePoint now, const TurnEnd& end);

  // Turn-end and shutdown saves: if `slot` is Idle and dirty and its agent
  // not held, marks it Saving and returns the job; EndSave reports how it
  // ended. An empty slot turns Free: the agent's file, if any, is its memory.
  std::optional<SaveJob> TryBeginSave(SlotId slot);
  void EndSave(SlotId slot, SaveResult result);
  // The agent's file is gone (quarantined) while its slot still holds its
  // KV: an Idle slot turns dirty, to be saved again. Returns that slot.
  std::optional<SlotId> MarkDirty(const AgentId& agent);
  // Idle dirty slots, least recently used first.
  std::vector<SlotId> DirtySlots() const;

  // llama-server restarted: every slot's KV is gone but `spare`'s (filled
  // since). Idle and free slots turn Free and stale now, the others when
  // released.
  void ResetAll(std::optional<SlotId> spare = std::nullopt);
  // As ResetAll, only if no idle slot but `spare` is dirty (its KV would be
  // forgotten unsaved); returns whether it reset.
  bool ResetAllIfSaved(std::optional<SlotId> spare = std::nullopt);

  // Removing (or replacing) an agent's memory: returns nullopt with *wait
  // = true while it has a request in flight. Otherwise the agent is held
  // (its requests wait) until EndDrop, and its slot, now Switching, is
  // returned if it is resident.
  std::optional<SlotId> TryBeginDrop(const AgentId& agent, bool* wait);
  // Releases the agent; its slot, if any, turns Free, stale unless erased.
  void EndDrop(const AgentId& agent, std::optional<SlotId> slot, bool erased);

  // Copying an agent's memory (fork): like TryBeginDrop, but the slot keeps
  // the agent's KV. While held, the agent's requests wait, its slot is
  // neither evicted nor saved by others; if it is dirty, the returned job
  // (slot now Saving) is the holder's to save and end with EndSave.
  std::optional<std::optional<SaveJob>> TryBeginHold(const AgentId& agent, bool* wait);
  void EndHold(const AgentId& agent);

  // A pinned agent's idle slot is never chosen for eviction. Pin returns
  // kConflict when max_pins agents are pinned already.
  Status Pin(const AgentId& agent);
  void Unpin(const AgentId& agent);
  bool Pinned(const AgentId& agent) const;

  SlotView View(SlotId slot) const;
  std::optional<SlotId> SlotOf(const AgentId& agent) const;

 private:
  struct Slot {
    SlotView view;
    std::optional<AgentId> evicting;  // Switching: the agent being saved out
  };

  bool InFlight(const AgentId& agent) const;
  // Marks slot `index` Switching for `tenant` and returns the plan that
  // evicts, restores or erases what it must.
  Plan TakeSlot(int index, const Tenant& tenant);
  // Remembers an agent leaving its slot while expected back.
  void NoteAway(const SlotView& leaving, TimePoint now);
  // The away agents not back in a slot, soonest first (AwayList::ByReturn).
  std::vector<AwayAgent> AwayByReturn(TimePoint now);
  std::optional<int> ChooseSlot(TimePoint now) const;
  // True if, at `now`, idle slot `a` should be evicted before idle slot `b`.
  bool EvictBefore(const SlotView& a, const SlotView& b, TimePoint now) const;
  Slot& At(SlotId slot) { return slots_[static_cast<size_t>(slot.value)]; }

  std::vector<Slot> slots_;
  HasMemoryFn has_memory_;
  int max_pins_;
  Eviction eviction_;
  std::unordered_set<AgentId> pinned_;
  std::unordered_set<AgentId> held_;  // dropped or held: nothing of them may run
  AwayList away_;                     // evicted while expected back
};

}  // namespace agentkv

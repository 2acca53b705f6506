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
#include "agentkv/token_count.h"

namespace agentkv {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// How the tenant's KV got into its slot; reported in logs and headers.
enum class Placement {
  kResident,   // the agent's KV was already in the slot
  kRestored,   // restored from the agent's file
  kPrefix,     // a new agent, from a snapshot of a prefix it shares
  kCold,       // the agent has no usable file: a normal prefill
  kStateless,  // no agent: the slot is wiped after the request
};
const char* PlacementName(Placement p);

// A key of a request's leading content (its first message, or the head of
// its prompt), 0 if unknown. Two requests with the same non-zero key start
// with the same tokens, so a slot that held the first must reuse some of its
// KV for the second: reusing nothing then proves the KV was gone (for models
// whose KV can be cut back to a common prefix; see ReuseChecks in placer.h).
using PromptKey = std::uint64_t;

// How eviction chooses among idle agents (--eviction).
enum class Eviction {
  kLru,        // the least recently used
  kPredicted,  // the least likely to be back soon (see Residency::ChooseSlot)
};

// What an agent's last turn says of its return.
enum class Expect {
  kUnknown,    // nothing: only its last use counts
  kDone,       // its client said it is done
  kPerson,     // the model stopped, or hit its limit: a person answers next, or nobody
  kReturning,  // a tool call, or a time its client gave: back in TurnEnd::back_in
};

// What a finished request left in its slot.
struct TurnEnd {
  // False when nothing ran on the slot: llama-server refused the request
  // before running it, or the hold was only a warm-up. The slot's KV, its
  // token count and its dirty flag then stay as they were.
  bool kv_changed = true;
  TokenCount kv_tokens;  // what the KV holds now, if llama-server said
  PromptKey prompt_key = 0;
  // llama-server said it computed at most one prompt token and generated at
  // most one. It recomputes the last prompt token of every request for its
  // logits, so such a turn (an agent resending what it sent before) left
  // nothing in the KV that its file lacks, beyond that one token.
  bool added_nothing = false;
  // What the turn says of the agent's return (set by the caller).
  Expect expect = Expect::kUnknown;
  std::chrono::milliseconds back_in{0};  // kReturning: expected back after this long

  static TurnEnd Ran(long long tokens, PromptKey key = 0) { return {true, tokens, key}; }
  static TurnEnd Unchanged() { return {false, std::nullopt, 0}; }
};

// The upstream steps to run, in this order, before the request.
struct Plan {
  SlotId slot;
  Tenant tenant;
  bool resident = false;           // the agent's KV is already in the slot
  std::optional<AgentId> evicted;  // the idle agent displaced from the slot
  bool save_evicted = false;       // its KV is newer than its file: save it
  TokenCount evicted_tokens;       // how many tokens its KV holds
  PromptKey evicted_prompt_key = 0;
  bool restore = false;  // restore the tenant's file into the slot
  // ...or, for a tenant with no file, this prefix snapshot's (set by Placer).
  std::optional<AgentId> restore_from;
  bool erase = false;  // wipe the slot (KV the tenant must not see)
  // A restore ahead of the tenant's request (TryBeginPrefetch): the slot
  // turns Idle, not Busy, and no request holds it.
  bool prefetch = false;
  // Resident: its KV was restored ahead of this request and not used since.
  bool prefetched = false;
};

// What running a plan achieved. A failed restore must be followed by an
// erase attempt, reported in `erased`.
struct SwitchOutcome {
  bool saved = false;
  bool restored = false;
  bool erased = false;
  long long restored_tokens = 0;
  PromptKey restored_prompt_key = 0;  // the key saved with the restored file
};

// A resident agent's KV to write to its file, off the request path.
struct SaveJob {
  SlotId slot;
  AgentId agent;
  TokenCount tokens;
  PromptKey prompt_key = 0;
  bool exact = false;                // the slot must hold exactly `tokens`, else nothing is saved
  Expect expect = Expect::kUnknown;  // what the agent's last turn said of its return
};

// How a save of a slot ended.
enum class SaveResult {
  kSaved,   // the file now holds the slot's KV
  kFailed,  // nothing changed on disk; the KV is still only in the slot
  kEmpty,   // the slot held no KV: nothing saved, the older file stays
};

enum class SlotPhase { kFree, kIdle, kBusy, kSwitching, kSaving };

struct SlotView {
  SlotPhase phase = SlotPhase::kFree;
  Tenant owner;                  // Idle/Busy/Switching/Saving: whose KV it holds
  bool dirty = false;            // Idle: KV newer than the agent's file
  bool kv_is_file = false;       // the KV is what the agent's file holds (restored, or saved since)
  bool stale = false;            // Free: holds KV that must be erased before reuse
  bool lost = false;             // Busy/Switching/Saving: llama-server restarted since
  TokenCount tokens = 0;         // tokens the KV holds, as last reported
  PromptKey prompt_key = 0;      // of the request that last changed the KV
  bool restored_unused = false;  // restored, and no request has changed it since
  TimePoint last_used{};
  Expect expect = Expect::kUnknown;  // Idle: what its last turn said of its return
  TimePoint expected_back{};         // kReturning: when
  TimePoint dirty_since{};           // dirty: when the oldest turn its file lacks ended
  bool prefetched = false;           // Idle: restored ahead of its request, unused since
};

// An evicted agent expected back (a candidate for TryBeginPrefetch).
struct AwayAgent {
  AgentId agent;
  TimePoint expected_back;
  bool advised = false;  // NextAway has named it
};

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
  // slot, or the idle slot eviction would take first, if that slot's agent
  // is expected back later than it (or not at all): a plan with `prefetch`
  // set, its slot Switching. CompleteSwitch then leaves the slot Idle and
  // clean, with the restored agent's expectation. An agent is remembered
  // as away when it is evicted while expected back; at most kMaxAway are,
  // each until it is placed or overdue, and a prefetched agent evicted
  // unused is not remembered again until its next turn. nullopt if
  // nothing qualifies.
  std::optional<Plan> TryBeginPrefetch(TimePoint now);
  // The agent TryBeginPrefetch would restore first, whether or not a slot
  // is open to it (to read its file into the page cache ahead), once each
  // time it is away: nullopt if none, or if it was named already.
  std::optional<AgentId> NextAway(TimePoint now);
  static constexpr int kMaxAway = 256;

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
  void ForgetAway(const AgentId& agent);
  // Drops the entries of agents overdue or back in a slot; returns the
  // others in the order they are expected back.
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
  std::vector<AwayAgent> away_;       // evicted while expected back, at most kMaxAway
};

}  // namespace agentkv

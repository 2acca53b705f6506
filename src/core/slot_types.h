#pragma once
// The vocabulary of slots and turns: how an agent was placed, what its last
// turn says of its return, the plan a placement runs upstream and what it
// achieved, a save's job and result, and what a slot holds. Shared by the
// residency core (residency.h), the SlotPool, the Placer and its saver, and
// the http layer that reports placements.

#include <chrono>
#include <cstdint>
#include <optional>

#include "agentkv/agent_id.h"
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

// A returning agent is protected until this long after it was expected:
// then its tool, or its client, is taken to have gone.
constexpr std::chrono::seconds kOverdue{60};

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

}  // namespace agentkv

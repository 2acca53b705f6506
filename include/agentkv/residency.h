#pragma once
// The residency core: which agent's KV lives in which llama-server slot, and
// what must happen upstream before a request can run. It decides; it does no
// I/O and takes no locks. Not thread-safe: SlotPool serializes access.
//
// A slot is Free (maybe holding stale KV nobody owns), Idle (an agent's KV,
// clean or dirty), Busy (a request runs on it) or Switching (its plan is being
// executed upstream). Requests of one agent are serialized; an arriving agent
// takes a free slot, else evicts the least recently used idle agent.

#include <chrono>
#include <optional>
#include <unordered_set>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/status.h"

namespace agentkv {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Whom a request runs for: an agent, or nobody (a stateless request).
using Tenant = std::optional<AgentId>;

// How the tenant's KV got into its slot; reported in logs and headers.
enum class Placement {
  kResident,   // the agent's KV was already in the slot
  kRestored,   // restored from the agent's file
  kCold,       // the agent has no usable file: a normal prefill
  kStateless,  // no agent: the slot is wiped after the request
};
const char* PlacementName(Placement p);

// The upstream steps to run, in this order, before the request.
struct Plan {
  SlotId slot;
  Tenant tenant;
  bool resident = false;           // the agent's KV is already in the slot
  std::optional<AgentId> evicted;  // the idle agent displaced from the slot
  bool save_evicted = false;       // its KV is newer than its file: save it
  bool restore = false;            // restore the tenant's file into the slot
  bool erase = false;              // wipe the slot (KV the tenant must not see)
  bool NeedsUpstream() const { return save_evicted || restore || erase; }
};

// What running a plan achieved. A failed restore must be followed by an
// erase attempt, reported in `erased`.
struct SwitchOutcome {
  bool saved = false;
  bool restored = false;
  bool erased = false;
};

enum class SlotPhase { kFree, kIdle, kBusy, kSwitching };

struct SlotView {
  SlotPhase phase = SlotPhase::kFree;
  Tenant owner;        // Idle/Busy/Switching: whose KV it holds or will hold
  bool dirty = false;  // Idle: KV newer than the agent's file
  bool stale = false;  // Free: holds KV that must be erased before reuse
  TimePoint last_used{};
};

class Residency {
 public:
  // All slots start Free and stale: agentkv cannot know what an upstream it
  // did not start holds, and an erase costs almost nothing.
  explicit Residency(int n_slots);

  int slot_count() const { return static_cast<int>(slots_.size()); }

  // Returns the plan to run if `tenant` may proceed now, with its slot marked
  // Busy (no upstream steps) or Switching. Returns nullopt if it must wait:
  // the agent has a request in flight, or every slot is busy or switching.
  std::optional<Plan> TryAcquire(const Tenant& tenant);

  // Records what the plan achieved and returns how the tenant was placed.
  // Returns kUpstreamError if the slot holds KV the tenant must not see (the
  // needed erase failed); the slot is then Free and stale, and the request
  // must not run.
  Result<Placement> CompleteSwitch(const Plan& plan, const SwitchOutcome& outcome);

  // The request on `slot` ended (whatever its outcome). An agent's slot turns
  // Idle and dirty, used at `now`; a stateless slot turns Free and stale.
  void Release(SlotId slot, TimePoint now);

  // Forgets that `agent` has a restorable file (e.g. after a failed restore).
  void ForgetFile(const AgentId& agent);

  SlotView View(SlotId slot) const;
  std::optional<SlotId> SlotOf(const AgentId& agent) const;
  bool HasFile(const AgentId& agent) const;

 private:
  struct Slot {
    SlotView view;
    std::optional<AgentId> evicting;  // Switching: the agent being saved out
  };

  bool InFlight(const AgentId& agent) const;
  std::optional<int> ChooseSlot() const;

  std::vector<Slot> slots_;
  std::unordered_set<AgentId> has_file_;
};

}  // namespace agentkv

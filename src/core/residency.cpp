#include "core/residency.h"

#include <algorithm>
#include <utility>

namespace agentkv {

Residency::Residency(int n_slots, HasMemoryFn has_memory, int max_pins, Eviction eviction)
    : slots_(static_cast<size_t>(n_slots)),
      has_memory_(std::move(has_memory)),
      max_pins_(std::clamp(max_pins, 0, std::max(0, n_slots - 1))),
      eviction_(eviction) {
  for (Slot& s : slots_) s.view.stale = true;
}

bool Residency::InFlight(const AgentId& agent) const {
  if (held_.count(agent)) return true;
  for (const Slot& s : slots_) {
    const SlotPhase p = s.view.phase;
    const bool active =
        p == SlotPhase::kBusy || p == SlotPhase::kSwitching || p == SlotPhase::kSaving;
    if (active && (s.view.owner == agent || s.evicting == agent)) return true;
  }
  return false;
}

// kPredicted: an agent that is done goes first; then one whose turn ended
// otherwise (a person answers next, or it said nothing, or its return is
// overdue), least recently used first; last, agents expected back, the
// one expected latest first. kLru: least recently used first.
bool Residency::EvictBefore(const SlotView& a, const SlotView& b, TimePoint now) const {
  auto rank = [&](const SlotView& v) {
    if (eviction_ == Eviction::kLru) return 1;
    switch (v.expect) {
      case Expect::kDone:
        return 2;
      case Expect::kReturning:
        return now > v.expected_back + kOverdue ? 1 : 0;
      case Expect::kPerson:
      case Expect::kUnknown:
        break;
    }
    return 1;
  };
  const int ra = rank(a), rb = rank(b);
  if (ra != rb) return ra > rb;
  if (ra == 0 && a.expected_back != b.expected_back) return a.expected_back > b.expected_back;
  return a.last_used < b.last_used;
}

// A free slot first (an empty one before a stale one), else the idle slot
// to evict first (EvictBefore) whose agent is not pinned. If that slot is
// being saved, nothing: waiting for the save keeps the order strict.
std::optional<int> Residency::ChooseSlot(TimePoint now) const {
  std::optional<int> free, victim;
  for (int i = 0; i < slot_count(); ++i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase == SlotPhase::kFree) {
      const bool better = !free || (!v.stale && slots_[static_cast<size_t>(*free)].view.stale);
      if (better) free = i;
      continue;
    }
    const bool candidate = (v.phase == SlotPhase::kIdle || v.phase == SlotPhase::kSaving) &&
                           !Pinned(*v.owner) && !held_.count(*v.owner);
    if (candidate && (!victim || EvictBefore(v, slots_[static_cast<size_t>(*victim)].view, now))) {
      victim = i;
    }
  }
  if (free) return free;
  if (victim && slots_[static_cast<size_t>(*victim)].view.phase == SlotPhase::kIdle) {
    return victim;
  }
  return std::nullopt;
}

std::optional<Plan> Residency::TryAcquire(const Tenant& tenant, TimePoint now) {
  if (tenant) {
    if (InFlight(*tenant)) return std::nullopt;
    if (std::optional<SlotId> own = SlotOf(*tenant)) {
      SlotView& v = At(*own).view;
      v.phase = SlotPhase::kSwitching;
      Plan plan;
      plan.slot = *own;
      plan.tenant = tenant;
      plan.resident = true;
      plan.prefetched = std::exchange(v.prefetched, false);
      return plan;
    }
  }
  std::optional<int> chosen = ChooseSlot(now);
  if (!chosen) return std::nullopt;
  if (tenant) away_.Forget(*tenant);
  NoteAway(slots_[static_cast<size_t>(*chosen)].view, now);
  return TakeSlot(*chosen, tenant);
}

Plan Residency::TakeSlot(int index, const Tenant& tenant) {
  Slot& slot = slots_[static_cast<size_t>(index)];
  Plan plan;
  plan.slot = SlotId{index};
  plan.tenant = tenant;
  bool holds_foreign_kv = slot.view.stale;
  if (slot.view.phase == SlotPhase::kIdle) {
    plan.evicted = slot.view.owner;
    plan.save_evicted = slot.view.dirty;
    plan.evicted_tokens = slot.view.tokens;
    plan.evicted_prompt_key = slot.view.prompt_key;
    slot.evicting = slot.view.owner;
    holds_foreign_kv = true;
  }
  plan.restore = tenant && has_memory_(*tenant);
  plan.erase = !plan.restore && holds_foreign_kv;

  const TimePoint used = slot.view.last_used;
  slot.view = SlotView{};
  slot.view.phase = SlotPhase::kSwitching;
  slot.view.owner = tenant;
  slot.view.last_used = used;
  return plan;
}

void Residency::NoteAway(const SlotView& leaving, TimePoint now) {
  if (leaving.phase != SlotPhase::kIdle || leaving.expect != Expect::kReturning) return;
  if (leaving.prefetched || now > leaving.expected_back + kOverdue) return;
  away_.Note(*leaving.owner, leaving.expected_back);
}

std::vector<AwayAgent> Residency::AwayByReturn(TimePoint now) {
  return away_.ByReturn(now, [this](const AgentId& agent) { return SlotOf(agent).has_value(); });
}

std::optional<AgentId> Residency::NextAway(TimePoint now) {
  for (const AwayAgent& a : AwayByReturn(now)) {
    // Its eviction's save may still be writing its file: not yet.
    if (InFlight(a.agent) || !has_memory_(a.agent)) continue;
    if (away_.Advise(a.agent)) return a.agent;
    return std::nullopt;  // the first is named already
  }
  return std::nullopt;
}

std::optional<Plan> Residency::TryBeginPrefetch(TimePoint now) {
  for (const AwayAgent& a : AwayByReturn(now)) {
    if (InFlight(a.agent) || !has_memory_(a.agent)) continue;  // a save still writing its file
    std::optional<int> chosen = ChooseSlot(now);
    if (!chosen) return std::nullopt;
    const SlotView& v = slots_[static_cast<size_t>(*chosen)].view;
    if (v.phase == SlotPhase::kIdle) {
      const bool overdue = v.expect == Expect::kReturning && now > v.expected_back + kOverdue;
      if (v.expect != Expect::kDone && !overdue) return std::nullopt;  // it may be back first
    }
    away_.Forget(a.agent);
    NoteAway(v, now);
    Plan plan = TakeSlot(*chosen, a.agent);
    plan.prefetch = true;
    plan.restore = true;
    plan.erase = false;
    SlotView& taken = At(plan.slot).view;
    taken.expect = Expect::kReturning;
    taken.expected_back = a.expected_back;
    return plan;
  }
  return std::nullopt;
}

void Residency::Supersede(SlotId slot) {
  SlotView& v = At(slot).view;
  v.dirty = false;
  v.kv_is_file = false;
  v.tokens = 0;
  v.prompt_key = 0;
  v.restored_unused = false;
}

Result<Placement> Residency::CompleteSwitch(const Plan& plan, const SwitchOutcome& outcome) {
  Slot& slot = At(plan.slot);
  slot.evicting.reset();
  const bool must_erase = plan.erase || (plan.restore && !outcome.restored);
  if (must_erase && !outcome.erased) {
    slot.view = SlotView{};
    slot.view.stale = true;
    return Status::Error(ErrorCode::kUpstreamError,
                         "could not clear llama-server slot " + std::to_string(plan.slot.value));
  }
  const bool restored = plan.restore && outcome.restored;
  if (plan.prefetch) {
    if (!restored) {
      const TimePoint used = slot.view.last_used;
      slot.view = SlotView{};
      slot.view.last_used = used;
      return Placement::kCold;
    }
    slot.view.phase = SlotPhase::kIdle;
    slot.view.tokens = outcome.restored_tokens;
    slot.view.prompt_key = outcome.restored_prompt_key;
    slot.view.restored_unused = true;
    slot.view.kv_is_file = true;
    slot.view.prefetched = true;
    slot.view.last_used = slot.view.expected_back;
    return Placement::kRestored;
  }
  slot.view.phase = SlotPhase::kBusy;
  if (restored) {
    slot.view.tokens = outcome.restored_tokens;
    // A snapshot's KV is not the agent's file, and what it reuses is not
    // judged (no key): snapshots are shared by prompts that differ after them.
    slot.view.prompt_key = plan.restore_from ? 0 : outcome.restored_prompt_key;
    slot.view.restored_unused = !plan.restore_from;
    slot.view.kv_is_file = !plan.restore_from;
  }
  if (!plan.tenant) return Placement::kStateless;
  if (plan.resident) return Placement::kResident;
  if (!restored) return Placement::kCold;
  return plan.restore_from ? Placement::kPrefix : Placement::kRestored;
}

void Residency::Release(SlotId slot_id, TimePoint now, const TurnEnd& end) {
  SlotView& v = At(slot_id).view;
  v.last_used = now;
  if (v.owner && !v.lost) {
    v.phase = SlotPhase::kIdle;
    v.expect = end.expect;
    v.expected_back = now + end.back_in;
    v.prefetched = false;
    if (end.kv_changed) {
      if (!(v.kv_is_file && end.added_nothing)) {
        if (!v.dirty) v.dirty_since = now;
        v.dirty = true;
        v.kv_is_file = false;
      }
      v.tokens = end.kv_tokens;
      v.prompt_key = end.prompt_key;
      v.restored_unused = false;
    }
  } else {
    v = SlotView{};
    v.stale = true;
    v.last_used = now;
  }
}

std::optional<SaveJob> Residency::TryBeginSave(SlotId slot_id) {
  SlotView& v = At(slot_id).view;
  if (v.phase != SlotPhase::kIdle || !v.dirty || held_.count(*v.owner)) return std::nullopt;
  v.phase = SlotPhase::kSaving;
  SaveJob job{slot_id, *v.owner, v.tokens, v.prompt_key};
  job.expect = v.expect;
  return job;
}

void Residency::EndSave(SlotId slot_id, SaveResult result) {
  SlotView& v = At(slot_id).view;
  if (v.lost || result == SaveResult::kEmpty) {
    const TimePoint used = v.last_used;
    v = SlotView{};
    v.stale = true;
    v.last_used = used;
    return;
  }
  v.phase = SlotPhase::kIdle;
  v.dirty = result != SaveResult::kSaved;
  v.kv_is_file = result == SaveResult::kSaved;
}

std::optional<SlotId> Residency::MarkDirty(const AgentId& agent) {
  std::optional<SlotId> slot = SlotOf(agent);
  if (!slot || At(*slot).view.phase != SlotPhase::kIdle) return std::nullopt;
  if (!At(*slot).view.dirty) At(*slot).view.dirty_since = At(*slot).view.last_used;
  At(*slot).view.dirty = true;
  At(*slot).view.kv_is_file = false;
  return slot;
}

std::vector<SlotId> Residency::DirtySlots() const {
  std::vector<SlotId> out;
  for (int i = 0; i < slot_count(); ++i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase == SlotPhase::kIdle && v.dirty) out.push_back(SlotId{i});
  }
  std::stable_sort(out.begin(), out.end(), [&](SlotId a, SlotId b) {
    return slots_[static_cast<size_t>(a.value)].view.last_used <
           slots_[static_cast<size_t>(b.value)].view.last_used;
  });
  return out;
}

void Residency::ResetAll(std::optional<SlotId> spare) {
  for (Slot& s : slots_) {
    if (spare && &s == &At(*spare)) continue;
    if (s.view.phase == SlotPhase::kFree || s.view.phase == SlotPhase::kIdle) {
      const TimePoint used = s.view.last_used;
      s.view = SlotView{};
      s.view.stale = true;
      s.view.last_used = used;
    } else {
      s.view.lost = true;
    }
  }
}

bool Residency::ResetAllIfSaved(std::optional<SlotId> spare) {
  for (int i = 0; i < slot_count(); ++i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase == SlotPhase::kIdle && v.dirty && (!spare || spare->value != i)) return false;
  }
  ResetAll(spare);
  return true;
}

std::optional<SlotId> Residency::TryBeginDrop(const AgentId& agent, bool* wait) {
  *wait = InFlight(agent);
  if (*wait) return std::nullopt;
  held_.insert(agent);
  away_.Forget(agent);
  std::optional<SlotId> slot = SlotOf(agent);
  if (slot) At(*slot).view.phase = SlotPhase::kSwitching;
  return slot;
}

void Residency::EndDrop(const AgentId& agent, std::optional<SlotId> slot_id, bool erased) {
  held_.erase(agent);
  if (!slot_id) return;
  SlotView& v = At(*slot_id).view;
  const TimePoint used = v.last_used;
  v = SlotView{};
  v.stale = !erased;
  v.last_used = used;
}

std::optional<std::optional<SaveJob>> Residency::TryBeginHold(const AgentId& agent, bool* wait) {
  *wait = InFlight(agent);
  if (*wait) return std::nullopt;
  std::optional<SaveJob> job;
  if (std::optional<SlotId> slot = SlotOf(agent)) job = TryBeginSave(*slot);
  held_.insert(agent);
  return job;
}

void Residency::EndHold(const AgentId& agent) { held_.erase(agent); }

Status Residency::Pin(const AgentId& agent) {
  if (pinned_.count(agent)) return Status::Ok();
  if (static_cast<int>(pinned_.size()) >= max_pins_) {
    return Status::Error(ErrorCode::kConflict,
                         "at most " + std::to_string(max_pins_) + " agents may be pinned at once");
  }
  pinned_.insert(agent);
  return Status::Ok();
}

void Residency::Unpin(const AgentId& agent) { pinned_.erase(agent); }

bool Residency::Pinned(const AgentId& agent) const { return pinned_.count(agent) > 0; }

SlotView Residency::View(SlotId slot) const { return slots_[static_cast<size_t>(slot.value)].view; }

std::optional<SlotId> Residency::SlotOf(const AgentId& agent) const {
  for (int i = 0; i < slot_count(); ++i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase != SlotPhase::kFree && v.owner == agent) return SlotId{i};
  }
  return std::nullopt;
}

}  // namespace agentkv

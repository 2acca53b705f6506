#include "agentkv/residency.h"

namespace agentkv {

const char* PlacementName(Placement p) {
  switch (p) {
    case Placement::kResident: return "resident";
    case Placement::kRestored: return "restored";
    case Placement::kCold: return "cold";
    case Placement::kStateless: return "stateless";
  }
  return "unknown";
}

Residency::Residency(int n_slots) : slots_(static_cast<size_t>(n_slots)) {
  for (Slot& s : slots_) s.view.stale = true;
}

bool Residency::InFlight(const AgentId& agent) const {
  for (const Slot& s : slots_) {
    const bool active = s.view.phase == SlotPhase::kBusy ||
                        s.view.phase == SlotPhase::kSwitching;
    if (active && (s.view.owner == agent || s.evicting == agent)) return true;
  }
  return false;
}

// A free slot first (an empty one before a stale one), else the least
// recently used idle slot.
std::optional<int> Residency::ChooseSlot() const {
  std::optional<int> best;
  auto rank = [&](int i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase == SlotPhase::kFree) return v.stale ? 1 : 0;
    return 2;
  };
  for (int i = 0; i < slot_count(); ++i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase != SlotPhase::kFree && v.phase != SlotPhase::kIdle) continue;
    if (!best) {
      best = i;
      continue;
    }
    const int r = rank(i), rb = rank(*best);
    const SlotView& b = slots_[static_cast<size_t>(*best)].view;
    if (r < rb || (r == 2 && rb == 2 && v.last_used < b.last_used)) best = i;
  }
  return best;
}

std::optional<Plan> Residency::TryAcquire(const Tenant& tenant) {
  if (tenant) {
    if (InFlight(*tenant)) return std::nullopt;
    if (std::optional<SlotId> own = SlotOf(*tenant)) {
      slots_[static_cast<size_t>(own->value)].view.phase = SlotPhase::kSwitching;
      Plan plan;
      plan.slot = *own;
      plan.tenant = tenant;
      plan.resident = true;
      return plan;
    }
  }
  std::optional<int> chosen = ChooseSlot();
  if (!chosen) return std::nullopt;
  Slot& slot = slots_[static_cast<size_t>(*chosen)];

  Plan plan;
  plan.slot = SlotId{*chosen};
  plan.tenant = tenant;
  bool holds_foreign_kv = slot.view.stale;
  if (slot.view.phase == SlotPhase::kIdle) {
    plan.evicted = slot.view.owner;
    plan.save_evicted = slot.view.dirty;
    slot.evicting = slot.view.owner;
    holds_foreign_kv = true;
  }
  plan.restore = tenant && HasFile(*tenant);
  plan.erase = !plan.restore && holds_foreign_kv;

  slot.view.phase = SlotPhase::kSwitching;
  slot.view.owner = tenant;
  slot.view.dirty = false;
  slot.view.stale = false;
  return plan;
}

Result<Placement> Residency::CompleteSwitch(const Plan& plan,
                                            const SwitchOutcome& outcome) {
  Slot& slot = slots_[static_cast<size_t>(plan.slot.value)];
  if (plan.evicted) {
    // A failed save keeps the older file, if any: it holds a prefix of the
    // same agent's tokens, which llama-server matches token by token.
    if (plan.save_evicted && outcome.saved) has_file_.insert(*plan.evicted);
    slot.evicting.reset();
  }
  if (plan.restore && !outcome.restored) has_file_.erase(*plan.tenant);

  const bool must_erase = plan.erase || (plan.restore && !outcome.restored);
  if (must_erase && !outcome.erased) {
    slot.view = SlotView{SlotPhase::kFree, std::nullopt, false, true, slot.view.last_used};
    return Status::Error(ErrorCode::kUpstreamError,
                         "could not clear llama-server slot " +
                             std::to_string(plan.slot.value));
  }
  slot.view.phase = SlotPhase::kBusy;
  if (!plan.tenant) return Placement::kStateless;
  if (plan.resident) return Placement::kResident;
  return plan.restore && outcome.restored ? Placement::kRestored : Placement::kCold;
}

void Residency::Release(SlotId slot_id, TimePoint now) {
  SlotView& v = slots_[static_cast<size_t>(slot_id.value)].view;
  v.last_used = now;
  if (v.owner) {
    v.phase = SlotPhase::kIdle;
    v.dirty = true;
  } else {
    v.phase = SlotPhase::kFree;
    v.stale = true;
  }
}

void Residency::ForgetFile(const AgentId& agent) { has_file_.erase(agent); }

SlotView Residency::View(SlotId slot) const {
  return slots_[static_cast<size_t>(slot.value)].view;
}

std::optional<SlotId> Residency::SlotOf(const AgentId& agent) const {
  for (int i = 0; i < slot_count(); ++i) {
    const SlotView& v = slots_[static_cast<size_t>(i)].view;
    if (v.phase != SlotPhase::kFree && v.owner == agent) return SlotId{i};
  }
  return std::nullopt;
}

bool Residency::HasFile(const AgentId& agent) const {
  return has_file_.count(agent) > 0;
}

}  // namespace agentkv

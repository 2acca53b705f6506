#include "agentkv/placer.h"

#include <spdlog/spdlog.h>

namespace agentkv {

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    slot_ = other.slot_;
    tenant_ = std::move(other.tenant_);
    placement_ = other.placement_;
  }
  return *this;
}

void Lease::Release() {
  if (pool_) std::exchange(pool_, nullptr)->Release(slot_);
}

Result<Lease> Placer::Place(const Tenant& tenant) {
  Result<Plan> plan = pool_.Acquire(tenant);
  if (!plan.ok()) return plan.status();
  Status erase_error;
  const SwitchOutcome outcome = Run(plan.value(), &erase_error);
  Result<Placement> placed = pool_.CompleteSwitch(plan.value(), outcome);
  if (!placed.ok()) return erase_error.ok() ? placed.status() : erase_error;
  return Lease(&pool_, plan->slot, tenant, placed.value());
}

SwitchOutcome Placer::Run(const Plan& plan, Status* erase_error) {
  SwitchOutcome out;
  const int slot = plan.slot.value;
  if (plan.save_evicted) {
    const AgentId& victim = *plan.evicted;
    Result<SlotActionResult> r = upstream_.SaveSlot(plan.slot, Store::TempFileName(victim));
    Status s = r.ok() ? store_.CommitSave(victim) : r.status();
    out.saved = s.ok();
    if (out.saved) {
      spdlog::debug("saved agent {} from slot {}: {} tokens, {} bytes, {:.1f} ms",
                    victim.str(), slot, r->n_tokens, r->n_bytes, r->ms);
    } else {
      spdlog::warn("could not save agent {} from slot {}: {}", victim.str(), slot,
                   s.message());
    }
  }
  if (plan.restore) {
    const AgentId& agent = *plan.tenant;
    Result<SlotActionResult> r = upstream_.RestoreSlot(plan.slot, Store::FileName(agent));
    out.restored = r.ok();
    if (out.restored) {
      spdlog::debug("restored agent {} into slot {}: {} tokens, {:.1f} ms", agent.str(),
                    slot, r->n_tokens, r->ms);
    } else {
      spdlog::warn("could not restore agent {} into slot {}, prefilling instead: {}",
                   agent.str(), slot, r.status().message());
    }
  }
  if (plan.erase || (plan.restore && !out.restored)) {
    Status s = upstream_.EraseSlot(plan.slot);
    out.erased = s.ok();
    if (!s.ok()) spdlog::error("could not erase slot {}: {}", slot, s.message());
    *erase_error = s;
  }
  return out;
}

}  // namespace agentkv

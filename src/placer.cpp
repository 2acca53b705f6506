#include "agentkv/placer.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace agentkv {

namespace {
// A restore or resident slot this large that reuses nothing was not trusted.
constexpr long long kMinTokensToJudge = 16;
}  // namespace

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release(-1);
    pool_ = std::exchange(other.pool_, nullptr);
    slot_ = other.slot_;
    tenant_ = std::move(other.tenant_);
    placement_ = other.placement_;
    restored_tokens_ = other.restored_tokens_;
  }
  return *this;
}

void Lease::Release(long long kv_tokens) {
  if (pool_) std::exchange(pool_, nullptr)->Release(slot_, kv_tokens);
}

Placer::Placer(SlotPool& pool, Upstream& upstream, Store& store, SavePolicy policy,
               Metrics& metrics)
    : pool_(pool), upstream_(upstream), store_(store), policy_(policy), metrics_(metrics) {
  saver_ = std::thread([this] { SaverLoop(); });
}

Placer::~Placer() { Stop(); }

void Placer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  saves_changed_.notify_all();
  if (saver_.joinable()) saver_.join();
}

PlacerStats Placer::stats() const {
  return PlacerStats{metrics_.restores,  metrics_.saves,     metrics_.save_failures,
                     metrics_.evictions, metrics_.fallbacks, metrics_.resets};
}

Result<Lease> Placer::Place(const Tenant& tenant) {
  Result<Plan> plan = pool_.Acquire(tenant);
  if (!plan.ok()) return plan.status();
  // Most recent first, so that the budget a save below may enforce spares
  // the file about to be restored.
  if (tenant) store_.Touch(*tenant);
  Status erase_error;
  const SwitchOutcome outcome = Run(plan.value(), &erase_error);
  Result<Placement> placed = pool_.CompleteSwitch(plan.value(), outcome);
  if (!placed.ok()) return erase_error.ok() ? placed.status() : erase_error;
  return Lease(&pool_, plan->slot, tenant, placed.value(), outcome.restored_tokens);
}

// Writes the KV of `agent` in `slot` to a new generation of its file.
bool Placer::SaveSlot(SlotId slot, const AgentId& agent, long long tokens) {
  const auto started = std::chrono::steady_clock::now();
  Result<std::string> temp = store_.BeginSave(agent, tokens);
  Result<SlotActionResult> r =
      temp.ok() ? upstream_.SaveSlot(slot, temp.value()) : Result<SlotActionResult>(temp.status());
  Status s = r.ok() ? Status::Ok() : r.status();
  if (s.ok() && r->n_tokens == 0) {
    // Never replace a memory with an empty one. An empty slot that the
    // agent's turns had filled (or whose count is unknown: -1) means that
    // llama-server lost its state.
    s = Status::Error(ErrorCode::kUpstreamError, "llama-server's slot was empty");
    if (tokens != 0) ResetSlots("a save found slot " + std::to_string(slot.value) + " empty");
  }
  if (s.ok()) s = store_.CommitSave(agent, r->n_tokens);
  if (!s.ok()) {
    store_.AbortSave(agent);
    ++metrics_.save_failures;
    spdlog::warn("could not save agent {} from slot {}: {}", agent.ForLog(), slot.value,
                 s.message());
    return false;
  }
  ++metrics_.saves;
  metrics_.save_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  spdlog::debug("saved agent {} from slot {}: {} tokens, {} bytes, {:.1f} ms", agent.ForLog(),
                slot.value, r->n_tokens, r->n_bytes, r->ms);
  for (const AgentId& gone : store_.EnforceBudget({agent})) {
    spdlog::info("agent {} lost its saved memory to the disk budget", gone.ForLog());
  }
  return true;
}

SwitchOutcome Placer::Run(const Plan& plan, Status* erase_error) {
  SwitchOutcome out;
  const int slot = plan.slot.value;
  if (plan.evicted) ++metrics_.evictions;
  if (plan.save_evicted) out.saved = SaveSlot(plan.slot, *plan.evicted, plan.evicted_tokens);
  if (plan.restore) {
    const AgentId& agent = *plan.tenant;
    Result<std::string> file = store_.PrepareRestore(agent);
    const auto started = std::chrono::steady_clock::now();
    Result<SlotActionResult> r = file.ok() ? upstream_.RestoreSlot(plan.slot, file.value())
                                           : Result<SlotActionResult>(file.status());
    out.restored = r.ok();
    if (out.restored) {
      out.restored_tokens = r->n_tokens;
      ++metrics_.restores;
      metrics_.restore_seconds.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      spdlog::debug("restored agent {} into slot {}: {} tokens, {:.1f} ms", agent.ForLog(), slot,
                    r->n_tokens, r->ms);
    } else {
      ++metrics_.fallbacks;
      if (file.ok()) store_.Quarantine(agent, "llama-server refused it: " + r.status().message());
      spdlog::warn("agent {}: no restore, prefilling instead: {}", agent.ForLog(),
                   r.status().message());
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

void Placer::Finish(Lease& lease, std::optional<long long> cache_n, long long prompt_n,
                    long long kv_tokens) {
  if (cache_n) metrics_.tokens_reused += *cache_n;
  metrics_.tokens_prefilled += prompt_n;
  if (lease.tenant() && cache_n && *cache_n == 0) {
    const AgentId& agent = *lease.tenant();
    if (lease.placement() == Placement::kRestored && lease.restored_tokens() >= kMinTokensToJudge) {
      // Upstream bugs have made restores report success and reuse nothing.
      ++metrics_.fallbacks;
      store_.Quarantine(agent, "restored " + std::to_string(lease.restored_tokens()) +
                                   " tokens but the request reused none");
    } else if (lease.placement() == Placement::kResident &&
               pool_.View(lease.slot()).tokens >= kMinTokensToJudge) {
      ResetSlots("agent " + agent.ForLog() + "'s resident KV was gone");
    }
  }
  const SlotId slot = lease.slot();
  const bool agent = lease.tenant().has_value();
  lease.Release(kv_tokens);
  if (agent && policy_ == SavePolicy::kTurnEnd) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      save_queue_.push_back(slot);
    }
    saves_changed_.notify_all();
  }
}

void Placer::SaverLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    saves_changed_.wait(lock, [&] { return stopping_ || !save_queue_.empty(); });
    if (stopping_) return;
    const SlotId slot = save_queue_.front();
    save_queue_.pop_front();
    saving_ = true;
    lock.unlock();
    SaveIdle(slot);
    lock.lock();
    saving_ = false;
    saves_changed_.notify_all();
  }
}

void Placer::DrainSaves() {
  std::unique_lock<std::mutex> lock(mu_);
  saves_changed_.wait(lock, [&] { return stopping_ || (save_queue_.empty() && !saving_); });
}

bool Placer::SaveIdle(SlotId slot) {
  std::optional<SaveJob> job = pool_.TryBeginSave(slot);
  if (!job) return true;  // busy again, or clean: nothing to do
  const bool saved = SaveSlot(job->slot, job->agent, job->tokens);
  pool_.EndSave(job->slot, saved);
  return saved;
}

int Placer::SaveAllDirty() {
  int failed = 0;
  for (SlotId slot : pool_.DirtySlots()) failed += SaveIdle(slot) ? 0 : 1;
  return failed;
}

// Holds `agent` (its requests wait), erases its slot if resident, runs
// `then` and releases it: nothing of the agent can be restored meanwhile.
Status Placer::Dropping(const AgentId& agent, bool* had_memory,
                        const std::function<Status()>& then) {
  Result<std::optional<SlotId>> slot = pool_.BeginDrop(agent);
  if (!slot.ok()) return slot.status();
  bool erased = false;
  if (slot.value()) {
    Status s = upstream_.EraseSlot(*slot.value());
    erased = s.ok();
    if (!s.ok()) spdlog::warn("dropping {}: slot not erased: {}", agent.ForLog(), s.message());
  }
  *had_memory = store_.Remove(agent) || slot.value().has_value();
  Status s = then ? then() : Status::Ok();
  pool_.EndDrop(agent, slot.value(), erased);
  return s;
}

Status Placer::Forget(const AgentId& agent) {
  bool known = false;
  Status s = Dropping(agent, &known, nullptr);
  pool_.Unpin(agent);
  if (!s.ok()) return s;
  if (!known) return Status::Error(ErrorCode::kNotFound, "agentkv has no memory of " + agent.str());
  spdlog::info("forgot agent {}", agent.ForLog());
  return Status::Ok();
}

Status Placer::Fork(const AgentId& parent, const AgentId& child) {
  if (std::optional<SlotId> slot = pool_.SlotOf(parent)) {
    if (!SaveIdle(*slot)) {
      return Status::Error(ErrorCode::kIo, "could not save " + parent.str() + " before forking");
    }
  }
  if (!store_.HasMemory(parent)) {
    return Status::Error(ErrorCode::kNotFound, "agent " + parent.str() + " has no saved memory");
  }
  bool replaced = false;
  return Dropping(child, &replaced, [&] { return store_.Fork(parent, child); });
}

void Placer::ResetSlots(const std::string& why) {
  spdlog::warn("llama-server lost its slots ({}): agents will be restored from disk", why);
  ++metrics_.resets;
  pool_.ResetAll();
}

}  // namespace agentkv

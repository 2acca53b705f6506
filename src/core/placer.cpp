#include "core/placer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace agentkv {

namespace {
// A restore or resident slot this large that reuses nothing was not trusted.
constexpr long long kMinTokensToJudge = 16;

using Steady = std::chrono::steady_clock;

double MsSince(Steady::time_point start) {
  return std::chrono::duration<double, std::milli>(Steady::now() - start).count();
}
}  // namespace

Placer::Placer(SlotPool& pool, SlotActions& upstream, Store& store, SavePolicy policy,
               Metrics& metrics, ReuseChecks checks, SaveDeferral deferral, ReturnAware aware)
    : pool_(pool),
      upstream_(upstream),
      store_(store),
      policy_(policy),
      metrics_(metrics),
      checks_(checks),
      aware_(aware),
      basis_(pool, store, metrics),
      saves_(
          deferral, [this](SlotId slot) { SaveIdle(slot); }, metrics) {
  if (aware_.prefetch) prefetcher_ = std::thread([this] { PrefetchLoop(); });
}

Placer::~Placer() { Stop(); }

void Placer::Stop() {
  saves_.Stop();
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  pool_.Wake();
  if (prefetcher_.joinable()) prefetcher_.join();
}

PlacerStats Placer::stats() const {
  return PlacerStats{metrics_.restores,  metrics_.saves,     metrics_.save_failures,
                     metrics_.evictions, metrics_.fallbacks, metrics_.resets};
}

Result<Lease> Placer::Place(const Tenant& tenant, const StartFrom& start_from) {
  const auto arrival = Steady::now();
  Result<Plan> plan = pool_.Acquire(tenant);
  if (!plan.ok()) return plan.status();
  if (tenant && store_.shared()) basis_.Reconcile(&plan.value());
  if (start_from && tenant && !plan->resident && !plan->restore) {
    std::optional<AgentId> from = start_from();
    if (from && store_.shared()) store_.Refresh(*from);  // maybe another node's snapshot
    if (from && store_.HasMemory(*from)) {
      plan->restore = true;
      plan->erase = false;  // the restore replaces whatever the slot held
      plan->restore_from = from;
      store_.Touch(*from);
    }
  }
  StepTimes steps;
  steps.wait = MsSince(arrival);
  // Most recent first, so that the budget a save below may enforce spares
  // the file about to be restored.
  if (tenant) store_.Touch(*tenant);
  Status erase_error;
  const SwitchOutcome outcome = Run(plan.value(), &erase_error, &steps);
  Result<Placement> placed = pool_.CompleteSwitch(plan.value(), outcome);
  if (!placed.ok()) return erase_error.ok() ? placed.status() : erase_error;
  if (plan->prefetched) ++metrics_.prefetch_hits;
  spdlog::debug(
      "placed agent {} in slot {} ({}) in {:.1f} ms: wait {:.1f}, save {:.1f}, commit {:.1f}, "
      "check {:.1f}, restore {:.1f}, erase {:.1f}",
      tenant ? tenant->ForLog() : "-", plan->slot.value, PlacementName(placed.value()),
      MsSince(arrival), steps.wait, steps.save, steps.commit, steps.check, steps.restore,
      steps.erase);
  return Lease(&pool_, plan->slot, tenant, placed.value(), outcome.restored_tokens);
}

// Writes the KV of the job's slot to a new generation of its agent's file.
SaveResult Placer::SaveSlot(const SaveJob& job, StepTimes* steps) {
  const AgentId& agent = job.agent;
  const auto started = Steady::now();
  Result<std::string> temp = store_.BeginSave(agent, job.tokens);
  Result<SlotActionResult> r = temp.ok() ? upstream_.SaveSlot(job.slot, temp.value())
                                         : Result<SlotActionResult>(temp.status());
  const double save_ms = MsSince(started);
  const auto commit_started = Steady::now();
  Status s = r.ok() ? Status::Ok() : r.status();
  const bool empty = s.ok() && r->n_tokens == 0;
  if (empty) s = Status::Error(ErrorCode::kUpstreamError, "llama-server's slot was empty");
  if (s.ok() && job.exact && job.tokens != r->n_tokens) {
    s = Status::Error(ErrorCode::kUpstreamError, "the slot held " + std::to_string(r->n_tokens) +
                                                     " tokens, not " +
                                                     std::to_string(job.tokens.value_or(-1)));
  }
  // Never replace a memory with an empty one: the older file stays.
  if (temp.ok() && !s.ok()) store_.AbortSave(agent);
  if (s.ok()) s = store_.CommitSave(agent, r->n_tokens, job.prompt_key);  // aborts itself
  const double commit_ms = MsSince(commit_started);
  if (steps) {
    steps->save = save_ms;
    steps->commit = commit_ms;
  }
  if (!s.ok()) {
    ++metrics_.save_failures;
    spdlog::warn("could not save agent {} from slot {}: {}", agent.ForLog(), job.slot.value,
                 s.message());
    return empty ? SaveResult::kEmpty : SaveResult::kFailed;
  }
  ++metrics_.saves;
  metrics_.saved_bytes += r->n_bytes;
  // A done agent's file is not read again soon: its pages may go.
  if (aware_.prefetch && job.expect == Expect::kDone) {
    store_.Advise(agent, FileSystem::Advice::kDontNeed);
  }
  // The slot's KV is what this save wrote (agents only: a snapshot's is not).
  if (store_.shared() && !job.exact) basis_.Saved(agent, store_.StateFile(agent).value_or(""));
  {
    MutexLock lock(mu_);
    refusals_.erase(agent);  // refusals count for one file, in a row
  }
  metrics_.save_seconds.Observe(std::chrono::duration<double>(Steady::now() - started).count());
  spdlog::debug(
      "saved agent {} from slot {}: {} tokens, {} bytes, {:.1f} ms (llama-server {:.1f}, "
      "commit {:.1f})",
      agent.ForLog(), job.slot.value, r->n_tokens, r->n_bytes, save_ms + commit_ms, save_ms,
      commit_ms);
  for (const AgentId& gone : store_.EnforceBudget({agent})) {
    spdlog::info("agent {} lost its saved memory to the disk budget", gone.ForLog());
  }
  return SaveResult::kSaved;
}

SwitchOutcome Placer::Run(const Plan& plan, Status* erase_error, StepTimes* steps) {
  SwitchOutcome out;
  if (plan.evicted) ++metrics_.evictions;
  if (plan.save_evicted) {
    const SaveResult saved = SaveSlot(
        SaveJob{plan.slot, *plan.evicted, plan.evicted_tokens, plan.evicted_prompt_key}, steps);
    out.saved = saved == SaveResult::kSaved;
    if (saved == SaveResult::kEmpty && plan.evicted_tokens.value_or(0) >= kMinTokensToJudge) {
      // This slot is refilled below: only the others are forgotten.
      ResetSlots("a save found slot " + std::to_string(plan.slot.value) + " empty", plan.slot);
    }
  }
  if (plan.restore) Restore(plan, &out, steps);
  if (plan.erase || (plan.restore && !out.restored)) {
    const auto started = Steady::now();
    Status s = upstream_.EraseSlot(plan.slot);
    steps->erase = MsSince(started);
    out.erased = s.ok();
    if (!s.ok()) spdlog::error("could not erase slot {}: {}", plan.slot.value, s.message());
    *erase_error = s;
  }
  return out;
}

void Placer::Restore(const Plan& plan, SwitchOutcome* out, StepTimes* steps) {
  const AgentId& agent = plan.restore_from ? *plan.restore_from : *plan.tenant;
  const auto checked = Steady::now();
  Result<RestoreFile> file = store_.PrepareRestore(agent);
  steps->check = MsSince(checked);
  const auto started = Steady::now();
  Result<SlotActionResult> r = file.ok() ? upstream_.RestoreSlot(plan.slot, file->name)
                                         : Result<SlotActionResult>(file.status());
  steps->restore = MsSince(started);
  out->restored = r.ok();
  if (out->restored) {
    out->restored_tokens = r->n_tokens;
    out->restored_prompt_key = file->prompt_key;
    ++(plan.prefetch ? metrics_.prefetches : metrics_.restores);
    metrics_.restored_bytes += r->n_bytes;
    metrics_.restore_seconds.Observe(
        std::chrono::duration<double>(Steady::now() - started).count());
    spdlog::debug("restored agent {} into slot {}: {} tokens, {:.1f} ms", agent.ForLog(),
                  plan.slot.value, r->n_tokens, r->ms);
    MutexLock lock(mu_);
    refusals_.erase(agent);
    return;
  }
  if (plan.prefetch) {  // says nothing of the file: its request restores it as usual
    ++metrics_.prefetch_failures;
    spdlog::info("agent {} not restored ahead of its request: {}", agent.ForLog(),
                 r.status().message());
    return;
  }
  ++metrics_.fallbacks;
  spdlog::warn("agent {}: no restore, prefilling instead: {}", agent.ForLog(),
               r.status().message());
  // Down, timed out or dropped: says nothing of the file. A refusal may be
  // passing (no room in the KV cache); one repeated is the file's.
  if (!file.ok() || r.status().code() != ErrorCode::kUpstreamError) return;
  int refusals;
  {
    MutexLock lock(mu_);
    refusals = ++refusals_[agent];
    if (refusals >= kMaxRefusals) refusals_.erase(agent);
  }
  if (refusals >= kMaxRefusals) {
    store_.Quarantine(agent, "llama-server refused it " + std::to_string(refusals) +
                                 " times in a row: " + r.status().message());
  }
}

void Placer::Finish(Lease& lease, std::optional<long long> cache_n, long long prompt_n,
                    const TurnEnd& end) {
  if (cache_n) metrics_.tokens_reused += *cache_n;
  metrics_.tokens_prefilled += prompt_n;
  if (lease.placement() == Placement::kPrefix) {
    ++metrics_.prefix_hits;
    // What came from the snapshot: not the tokens this request prefilled
    // itself when it also built a longer snapshot (see PrefixPath::Build).
    if (cache_n) metrics_.prefix_tokens_reused += std::min(*cache_n, lease.restored_tokens());
  }
  const SlotView before = pool_.View(lease.slot());
  // Evidence the slot's KV was gone: it held at least kMinTokensToJudge
  // tokens of a request with the same leading content, and none was reused.
  // A client cannot produce it: a different prompt has a different key.
  const bool kv_was_gone = lease.tenant() && end.kv_changed && cache_n && *cache_n == 0 &&
                           before.prompt_key != 0 && before.prompt_key == end.prompt_key &&
                           before.tokens.value_or(0) >= kMinTokensToJudge;
  // A restore that no request has used yet (a warm-up, a refused request)
  // is judged as a restore on the request that first uses it.
  const bool restored = lease.placement() == Placement::kRestored || before.restored_unused;
  bool reset = false;
  if (kv_was_gone && restored && checks_.after_restore) {
    // Upstream bugs have made restores report success and reuse nothing.
    ++metrics_.fallbacks;
    store_.Quarantine(*lease.tenant(), "restored " + std::to_string(*before.tokens) +
                                           " tokens but the request reused none");
  } else if (kv_was_gone && !restored && checks_.resident) {
    reset = true;
  }
  const SlotId slot = lease.slot();
  const bool agent = lease.tenant().has_value();
  const std::string who = agent ? lease.tenant()->ForLog() : "";
  lease.Release(end);
  // This slot's KV was just computed anew: only the others are forgotten.
  if (reset) ResetSlots("agent " + who + "'s resident KV was gone", slot);
  if (agent && end.kv_changed) ScheduleSave(slot, SaveDelay(slot, end));
}

std::optional<Steady::time_point> Placer::SaveDelay(SlotId slot, const TurnEnd& end) const {
  const bool returning = end.expect == Expect::kReturning && end.back_in <= aware_.save_delay;
  if (aware_.save_delay.count() <= 0 || !returning) return std::nullopt;
  const SlotView v = pool_.View(slot);
  if (v.phase != SlotPhase::kIdle || !v.dirty) return std::nullopt;
  // Due once the oldest turn the file lacks is save_delay old.
  const auto unsaved_for = pool_.now() - v.dirty_since;
  return Steady::now() + aware_.save_delay -
         std::chrono::duration_cast<Steady::duration>(unsaved_for);
}

Placer::PrefillTicket Placer::Prefilling() { return saves_.Prefilling(); }

void Placer::ScheduleSave(SlotId slot, std::optional<Steady::time_point> delayed_until) {
  if (policy_ == SavePolicy::kTurnEnd) saves_.Schedule(slot, delayed_until);
}

bool Placer::PrefetchOnce() {
  {
    MutexLock lock(mu_);
    if (stopping_) return false;
  }
  if (saves_.AnyPrefilling()) return false;  // a first token matters more
  std::optional<Plan> plan = pool_.TryBeginPrefetch();
  if (!plan) return false;
  const AgentId agent = *plan->tenant;
  store_.Touch(agent);  // the budget a save below may enforce spares it
  if (store_.shared()) basis_.Reconcile(&plan.value());
  StepTimes steps;
  Status erase_error;
  const SwitchOutcome outcome = Run(plan.value(), &erase_error, &steps);
  if (Result<Placement> placed = pool_.CompleteSwitch(plan.value(), outcome); !placed.ok()) {
    spdlog::warn("slot {} after a restore ahead: {}", plan->slot.value, placed.status().message());
  }
  spdlog::debug("agent {} {} slot {} ahead of its request: save {:.1f} ms, restore {:.1f} ms",
                agent.ForLog(), outcome.restored ? "restored into" : "not restored into",
                plan->slot.value, steps.save, steps.restore);
  return true;
}

void Placer::PrefetchLoop() {
  while (true) {
    const long long seen = pool_.version();
    {
      MutexLock lock(mu_);
      if (stopping_) return;
    }
    if (PrefetchOnce()) continue;
    // No slot for it yet: its file at least can be read ahead.
    if (std::optional<AgentId> next = pool_.NextAway()) {
      store_.Advise(*next, FileSystem::Advice::kWillNeed);
    }
    // Predictions also change with time (an agent turns overdue).
    pool_.WaitForChange(seen, Steady::now() + std::chrono::seconds(1));
  }
}

void Placer::DrainSaves() { saves_.Drain(); }

SaveResult Placer::RunSave(const SaveJob& job, bool judge_empty) {
  const SaveResult result = SaveSlot(job);
  pool_.EndSave(job.slot, result);
  // Only KV agentkv knew to be there is evidence: a count that is unknown
  // (a request cut short) or small may really be an empty slot.
  if (judge_empty && result == SaveResult::kEmpty && job.tokens.value_or(0) >= kMinTokensToJudge) {
    ResetSlots("a save found slot " + std::to_string(job.slot.value) + " empty");
  }
  return result;
}

bool Placer::SaveIdle(SlotId slot) {
  std::optional<SaveJob> job = pool_.TryBeginSave(slot);
  if (!job) return true;  // busy again, or clean: nothing to do
  return RunSave(*job, true) == SaveResult::kSaved;
}

int Placer::SaveAllDirty(std::chrono::steady_clock::time_point deadline) {
  int unsaved = 0;
  for (SlotId slot : pool_.DirtySlots()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ++unsaved;
      continue;
    }
    // An empty slot loses nothing: there was no KV to save.
    std::optional<SaveJob> job = pool_.TryBeginSave(slot);
    if (job && RunSave(*job, false) == SaveResult::kFailed) ++unsaved;
  }
  return unsaved;
}

void Placer::Forgotten(const AgentId& agent) {
  basis_.Forget(agent);
  MutexLock lock(mu_);
  refusals_.erase(agent);
}

void Placer::ResetSlots(const std::string& why, std::optional<SlotId> spare) {
  spdlog::warn("llama-server lost its slots ({}): agents will be restored from disk", why);
  ++metrics_.resets;
  // A slot that turns idle and dirty while the others are saved is saved
  // too before anything is forgotten (a few rounds at most: each round's
  // saves are quick, and requests keep ending).
  for (int round = 0; round < 3; ++round) {
    const int unsaved = SaveAllDirty();
    if (unsaved > 0) spdlog::warn("{} agents' latest turns could not be saved", unsaved);
    if (pool_.ResetAllIfSaved(spare)) return;
  }
  pool_.ResetAll(spare);
}

}  // namespace agentkv

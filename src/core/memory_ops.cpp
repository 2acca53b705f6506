#include "core/memory_ops.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace agentkv {

void MemoryOps::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  forks_changed_.notify_all();
}

bool MemoryOps::SaveSnapshot(const Lease& lease, const AgentId& snapshot, long long tokens,
                             PromptKey prompt_key, const std::optional<AgentId>& from) {
  SaveJob job{lease.slot(), snapshot, tokens, prompt_key};
  job.exact = true;
  if (placer_.WriteSlot(job) != SaveResult::kSaved) {
    return false;
  }
  ++metrics_.prefix_snapshots;
  if (from) ++metrics_.prefix_snapshots_from_memory;
  spdlog::info("saved prefix snapshot {} ({} tokens in the file) from slot {}{}", snapshot.str(),
               tokens, lease.slot().value,
               from ? ", built on the memory of " + from->ForLog() : "");
  return true;
}

Result<bool> MemoryOps::RestoreFrom(const Lease& lease, const AgentId& source) {
  // Held: no request, save or eviction of `source` while its file is read.
  std::optional<std::optional<SaveJob>> held = pool_.TryBeginHold(source);
  if (!held) return false;  // busy: its KV is changing
  bool restored = false, failed = false;
  if (!held->has_value() || placer_.SaveHeld(**held) == SaveResult::kSaved) {
    store_.Refresh(source);  // a shared directory: its latest memory
    Result<RestoreFile> file = store_.PrepareRestore(source);
    Result<SlotActionResult> r = file.ok() ? upstream_.RestoreSlot(lease.slot(), file->name)
                                           : Result<SlotActionResult>(file.status());
    restored = r.ok();
    failed = file.ok() && !r.ok();
    if (!r.ok()) {
      spdlog::debug("no prefix snapshot on the memory of {}: {}", source.ForLog(),
                    r.status().message());
    }
  }
  pool_.EndHold(source);
  ResaveIfFileGone(source);
  // A failed restore may have filled part of the slot.
  if (failed && !Wipe(lease)) {
    return Status::Error(ErrorCode::kUpstreamError,
                         "slot " + std::to_string(lease.slot().value) + " could not be erased");
  }
  return restored;
}

bool MemoryOps::Wipe(const Lease& lease) {
  Status s = upstream_.EraseSlot(lease.slot());
  if (!s.ok()) spdlog::warn("slot {} not erased: {}", lease.slot().value, s.message());
  return s.ok();
}

void MemoryOps::ResaveIfFileGone(const AgentId& agent) {
  if (store_.HasMemory(agent)) return;
  if (std::optional<SlotId> slot = pool_.MarkDirty(agent)) placer_.ScheduleSave(*slot);
}

Status MemoryOps::Dropping(const AgentId& agent, bool* had_memory,
                           const std::function<Status()>& then) {
  Result<std::optional<SlotId>> slot = pool_.BeginDrop(agent);
  if (!slot.ok()) return slot.status();
  bool erased = false;
  if (slot.value()) {
    Status s = upstream_.EraseSlot(*slot.value());
    erased = s.ok();
    if (!s.ok()) spdlog::warn("dropping {}: slot not erased: {}", agent.ForLog(), s.message());
  }
  Result<bool> removed = store_.Remove(agent);
  *had_memory = (removed.ok() && removed.value()) || slot.value().has_value();
  Status s = !removed.ok() ? removed.status() : then ? then() : Status::Ok();
  pool_.EndDrop(agent, slot.value(), erased);
  return s;
}

Status MemoryOps::Forget(const AgentId& agent) {
  bool known = false;
  Status s = Dropping(agent, &known, nullptr);
  pool_.Unpin(agent);
  placer_.Forgotten(agent);
  if (!s.ok()) return s;
  if (!known) return Status::Error(ErrorCode::kNotFound, "agentkv has no memory of " + agent.str());
  spdlog::info("forgot agent {}", agent.ForLog());
  return Status::Ok();
}

Status MemoryOps::Fork(const AgentId& parent, const AgentId& child) {
  {
    MutexLock lock(mu_);
    const bool free = forks_changed_.wait_for(lock, std::chrono::minutes(2), [&]() REQUIRES(mu_) {
      return stopping_ || (!forking_.count(parent) && !forking_.count(child));
    });
    if (!free || stopping_) return Status::Error(ErrorCode::kBusy, "another fork holds them");
    forking_.insert(parent);
    forking_.insert(child);
  }
  struct Done {
    MemoryOps* ops;
    const AgentId& parent;
    const AgentId& child;
    ~Done() {
      {
        MutexLock lock(ops->mu_);
        ops->forking_.erase(parent);
        ops->forking_.erase(child);
      }
      ops->forks_changed_.notify_all();
    }
  } done{this, parent, child};
  // Held: no request, save or eviction of the parent until the copy is done.
  Result<std::optional<SaveJob>> held = pool_.BeginHold(parent);
  if (!held.ok()) return held.status();
  Status s;
  if (held.value() && placer_.SaveHeld(*held.value()) != SaveResult::kSaved) {
    s = Status::Error(ErrorCode::kIo, "could not save " + parent.str() + " before forking");
  } else {
    store_.Refresh(parent);  // a shared directory: its latest memory, whichever node saved it
    if (s = store_.CheckFork(parent); s.ok()) {  // before the child loses anything
      bool replaced = false;
      s = Dropping(child, &replaced, [&] { return store_.Fork(parent, child); });
    }
  }
  pool_.EndHold(parent);
  ResaveIfFileGone(parent);
  return s;
}

}  // namespace agentkv

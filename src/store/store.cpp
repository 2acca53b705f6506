#include "store/store.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace agentkv {

namespace fs = std::filesystem;

namespace {

std::int64_t SystemNow() {
  return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
}

}  // namespace

Store::Store(fs::path dir, std::string fingerprint, StoreOptions options, WallClock now,
             FileSystem& files)
    : options_(options),
      now_(now ? std::move(now) : WallClock(SystemNow)),
      index_(options.budget_bytes),
      files_(files, std::move(dir), std::move(fingerprint),
             QuarantineBounds{options.quarantine_max_files, options.quarantine_max_bytes}, now_,
             options.node) {}

Status Store::Open() {
  Result<std::vector<StoredMemory>> found = files_.Recover();
  if (!found.ok()) return found.status();
  index_.Load(std::move(found.value()));
  found = std::vector<StoredMemory>();
  // Loading a large directory leaves tens of MiB free in malloc's arenas
  // (the listing, the decoded metadata, one arena per loading thread):
  // given back, so that RSS is what the index keeps.
  ::malloc_trim(0);
  spdlog::info("memory directory {}: {} agents, {} bytes ({} bytes per 1K tokens)", dir().string(),
               AgentCount(), TotalBytes(), bytes_per_1k_tokens());
  return Status::Ok();
}

bool Store::HasMemory(const AgentId& agent) const { return index_.Has(agent); }

std::optional<std::string> Store::StateFile(const AgentId& agent) const {
  std::optional<StoredMemory> m = index_.Lookup(agent);
  if (!m) return std::nullopt;
  return m->state_file;
}

std::optional<std::string> Store::Refresh(const AgentId& agent) {
  if (!shared()) return StateFile(agent);
  std::optional<StoredMemory> on_disk = files_.ReadCurrent(agent);
  if (!index_.Refresh(agent, on_disk)) return StateFile(agent);  // being saved or removed here
  if (!on_disk) return std::nullopt;
  return on_disk->state_file;
}

std::optional<MemoryInfo> Store::Find(const AgentId& agent) const {
  std::optional<StoredMemory> m = index_.Lookup(agent);
  if (!m) return std::nullopt;
  return m->info;
}

std::vector<MemoryInfo> Store::List() const { return index_.List(); }
std::size_t Store::AgentCount() const { return index_.Count(false); }
std::vector<AgentId> Store::InternalIds() const { return index_.InternalIds(); }
std::uint64_t Store::TotalBytes() const { return index_.TotalBytes(); }
int Store::quarantined() const { return files_.quarantined(); }
QuarantineUsage Store::quarantine_usage() const { return files_.quarantine_usage(); }

long long Store::bytes_per_1k_tokens() const {
  return static_cast<long long>(index_.BytesPerToken() * 1000);
}

void Store::Touch(const AgentId& agent) { index_.Touch(agent, now_()); }

void Store::Advise(const AgentId& agent, FileSystem::Advice advice) {
  if (std::optional<StoredMemory> e = index_.Lookup(agent)) files_.Advise(e->state_file, advice);
}

Result<std::string> Store::BeginSave(const AgentId& agent, TokenCount expected_tokens) {
  const StoreIndex::SaveStart start = index_.BeginSave(agent);
  if (std::optional<std::uint64_t> free_bytes = files_.FreeBytes()) {
    // A negative count is no count: it must not shrink what a save needs.
    const std::uint64_t tokens =
        KnownTokens(expected_tokens).value_or(KnownTokens(start.saved_tokens).value_or(0));
    const double needed = start.bytes_per_token * static_cast<double>(tokens) +
                          static_cast<double>(options_.min_free_bytes);
    if (static_cast<double>(*free_bytes) < needed) {
      (void)index_.AbortSave(agent);  // nothing written yet
      return Status::Error(ErrorCode::kIo,
                           "not enough free disk space in " + dir().string() + " to save an agent");
    }
  }
  return files_.SaveTempName(StoreFiles::Hash(agent), start.generation + 1);
}

void Store::EndSave(const AgentId& agent, long long fallback) {
  const std::optional<long long> writing = index_.AbortSave(agent);
  files_.RemoveTemporaries(StoreFiles::Hash(agent), writing.value_or(fallback));
}

void Store::AbortSave(const AgentId& agent) {
  const std::optional<StoredMemory> m = index_.Lookup(agent);
  EndSave(agent, (m ? m->generation : 0) + 1);
}

Status Store::CommitSave(const AgentId& agent, long long tokens, std::uint64_t prompt_key) {
  const TokenCount known = tokens >= 0 ? TokenCount(tokens) : std::nullopt;
  return Commit(agent, known, prompt_key, std::nullopt, ScopeOf(agent).value_or(""));
}

void Store::Claim(const AgentId& agent, const std::string& scope) {
  MutexLock lock(claims_mu_);
  ClaimRecord& claim = claims_.try_emplace(agent, ClaimRecord{scope, 0}).first->second;
  ++claim.holders;
}

void Store::Unclaim(const AgentId& agent, bool resident) {
  const bool keep = resident || index_.Has(agent) || index_.InUse(agent);
  MutexLock lock(claims_mu_);
  auto it = claims_.find(agent);
  if (it == claims_.end()) return;  // saved or removed meanwhile
  if (--it->second.holders <= 0 && !keep) claims_.erase(it);
}

std::size_t Store::SweepClaims(const std::function<bool(const AgentId&)>& resident) {
  std::vector<AgentId> idle;
  {
    MutexLock lock(claims_mu_);
    for (const auto& [agent, claim] : claims_) {
      if (claim.holders <= 0) idle.push_back(agent);
    }
  }
  // Asked without the lock: `resident` takes the slot pool's.
  std::vector<AgentId> gone;
  for (const AgentId& agent : idle) {
    if (!resident(agent) && !index_.Has(agent) && !index_.InUse(agent)) gone.push_back(agent);
  }
  MutexLock lock(claims_mu_);
  for (const AgentId& agent : gone) {
    auto it = claims_.find(agent);
    if (it != claims_.end() && it->second.holders <= 0) claims_.erase(it);
  }
  return claims_.size();
}

std::size_t Store::ClaimCount() const {
  MutexLock lock(claims_mu_);
  return claims_.size();
}

std::optional<std::string> Store::ScopeOf(const AgentId& agent) const {
  if (std::optional<StoredMemory> m = index_.Lookup(agent); m && !m->scope.empty()) {
    return m->scope;
  }
  MutexLock lock(claims_mu_);
  auto it = claims_.find(agent);
  if (it == claims_.end()) return std::nullopt;
  return it->second.scope;
}

Status Store::Commit(const AgentId& agent, TokenCount tokens, std::uint64_t prompt_key,
                     std::optional<std::uint64_t> expected, const std::string& scope) {
  const std::optional<StoredMemory> old = index_.Lookup(agent);
  const std::int64_t now = now_();
  StoredMemory e{MemoryInfo{agent, tokens, 0, old ? old->info.created : now, now, now},
                 "",
                 old ? old->generation + 1 : 1,
                 0,
                 files_.fingerprint(),
                 prompt_key,
                 std::nullopt,
                 now,
                 scope};
  e.state_file = files_.StateName(StoreFiles::Hash(agent), e.generation);
  Status s = files_.CommitSave(&e, old ? old->state_file : "", expected);
  if (!s.ok()) {
    AbortSave(agent);
    return s;
  }
  index_.CommitSave(std::move(e));
  MutexLock lock(claims_mu_);
  claims_.erase(agent);  // the memory holds it now
  return Status::Ok();
}

Result<RestoreFile> Store::PrepareRestore(const AgentId& agent) {
  std::optional<StoredMemory> e = index_.Lookup(agent);
  if (!e) return Status::Error(ErrorCode::kNotFound, "no memory for agent " + agent.str());
  const std::int64_t now = now_();
  std::optional<FileStamp> verified;
  Status checked = files_.Check(*e, now, &verified);
  if (!checked.ok() && checked.code() != ErrorCode::kIo && shared()) {
    // Another node may have saved the agent since this one looked, and
    // deleted the file looked at: the newer memory is the one to check.
    if (std::optional<std::string> newer = Refresh(agent); newer && *newer != e->state_file) {
      e = index_.Lookup(agent);
      if (!e) return Status::Error(ErrorCode::kNotFound, "no memory for agent " + agent.str());
      checked = files_.Check(*e, now, &verified);
    }
  }
  if (checked.code() == ErrorCode::kIo) {
    return Status::Error(ErrorCode::kIo, "cannot read the memory of agent " + agent.str() +
                                             " now: " + checked.message());
  }
  if (!checked.ok()) {
    Quarantine(agent, checked.message());
    return Status::Error(ErrorCode::kNotFound, "memory of agent " + agent.str() +
                                                   " failed its check (" + checked.message() + ")");
  }
  if (verified) index_.SetVerified(agent, e->generation, *verified, now);
  return RestoreFile{e->state_file, e->info.tokens, e->prompt_key};
}

void Store::Quarantine(const AgentId& agent, const std::string& reason) {
  std::optional<StoredMemory> e = index_.Take(agent);
  if (!e) return;
  spdlog::warn("quarantining memory of agent {}: {}", agent.ForLog(), reason);
  files_.Quarantine(StoreFiles::Hash(agent), e->state_file, reason);
}

Result<bool> Store::DeleteFiles(const AgentId& agent, const std::string& state_file) {
  Result<bool> deleted = files_.Delete(agent, state_file);
  index_.DoneRemoving(agent);
  if (!deleted.ok()) {
    spdlog::warn("could not delete the memory of agent {}: {} (tried again later)", agent.ForLog(),
                 deleted.status().message());
    MutexLock lock(undeleted_mu_);
    undeleted_[agent] = state_file;
    return deleted;
  }
  if (!deleted.value()) {
    spdlog::info("agent {} was saved by another node meanwhile: kept", agent.ForLog());
  }
  return deleted;
}

Result<bool> Store::Remove(const AgentId& agent) {
  RetryDeletes();
  Refresh(agent);  // in a shared directory, its latest files are the ones to go
  std::optional<StoredMemory> e = index_.StartRemoving(agent);
  // The temporary a save would write next, if none is in flight.
  EndSave(agent, (e ? e->generation : 0) + 1);
  Result<bool> deleted = DeleteFiles(agent, e ? e->state_file : "");
  {
    MutexLock lock(claims_mu_);
    claims_.erase(agent);
  }
  if (!deleted.ok()) {
    return Status::Error(ErrorCode::kIo, "could not delete the memory of agent " + agent.str() +
                                             ": " + deleted.status().message() +
                                             "; agentkv will not restore it, and tries again");
  }
  return e.has_value();
}

std::size_t Store::RetryDeletes() {
  std::unordered_map<AgentId, std::string> pending;
  {
    MutexLock lock(undeleted_mu_);
    pending.swap(undeleted_);
  }
  for (const auto& [agent, state_file] : pending) {
    if (!index_.StartRemovingAgain(agent)) {
      // Saved again since: its metadata is the new memory's now, and the
      // old state file an orphan, removed at the next start.
      spdlog::info("agent {} was saved again before its old memory could be deleted",
                   agent.ForLog());
      continue;
    }
    if (DeleteFiles(agent, state_file).ok()) {
      spdlog::info("deleted the memory of agent {} at last", agent.ForLog());
    }
  }
  MutexLock lock(undeleted_mu_);
  return undeleted_.size();
}

Status Store::BudgetHoldsTwo(const StoredMemory& parent_memory, const AgentId& parent) const {
  const auto bytes = static_cast<std::uint64_t>(parent_memory.info.bytes);
  if (options_.budget_bytes > 0 && 2 * bytes > options_.budget_bytes) {
    return Status::Error(ErrorCode::kConflict,
                         "the disk budget (" + std::to_string(options_.budget_bytes) +
                             " bytes) cannot hold two copies of " + parent.str() + "'s memory");
  }
  return Status::Ok();
}

Status Store::CheckFork(const AgentId& parent) {
  std::optional<StoredMemory> p = index_.Lookup(parent);
  if (!p) return Status::Error(ErrorCode::kNotFound, "agent " + parent.str() + " has no memory");
  if (Status s = BudgetHoldsTwo(*p, parent); !s.ok()) return s;
  Result<RestoreFile> checked = PrepareRestore(parent);  // quarantines a bad parent
  return checked.ok() ? Status::Ok() : checked.status();
}

Status Store::Fork(const AgentId& parent, const AgentId& child) {
  std::optional<StoredMemory> p = index_.Hold(parent);  // the budget spares it during the copy
  if (!p) return Status::Error(ErrorCode::kNotFound, "agent " + parent.str() + " has no memory");
  struct Release {
    StoreIndex& index;
    const AgentId& agent;
    ~Release() { index.Release(agent); }
  } release{index_, parent};
  // The parent's file is not read twice: the copy must match its checksum.
  if (Status s = BudgetHoldsTwo(*p, parent); !s.ok()) return s;
  // The child's old memory goes first; if it cannot, the fork says so.
  if (Result<bool> removed = Remove(child); !removed.ok()) return removed.status();
  Result<std::string> temp = BeginSave(child, p->info.tokens);
  if (!temp.ok()) return temp.status();
  if (Status s = files_.Copy(p->state_file, temp.value()); !s.ok()) {
    AbortSave(child);
    return s;
  }
  Status s = Commit(child, p->info.tokens, p->prompt_key, p->checksum, p->scope);
  if (!s.ok()) return s;
  for (const AgentId& gone : EnforceBudget({parent, child})) {
    spdlog::info("agent {} lost its saved memory to the disk budget", gone.ForLog());
  }
  return Status::Ok();
}

std::vector<AgentId> Store::EnforceBudget(const std::vector<AgentId>& keep) {
  RetryDeletes();
  std::vector<AgentId> gone;
  for (const StoredMemory& victim : index_.ChooseBudgetVictims(keep)) {
    spdlog::info("disk budget: deleting the memory of agent {}", victim.info.agent.ForLog());
    Result<bool> deleted = DeleteFiles(victim.info.agent, victim.state_file);
    if (!deleted.ok() || deleted.value()) gone.push_back(victim.info.agent);
  }
  return gone;
}

}  // namespace agentkv

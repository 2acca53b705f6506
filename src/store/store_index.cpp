#include "store/store_index.h"

#include <algorithm>

namespace agentkv {

void StoreIndex::Load(std::vector<StoredMemory> memories) {
  MutexLock lock(mu_);
  std::uint64_t tokens = 0;
  for (StoredMemory& m : memories) {
    tokens += KnownTokens(m.info.tokens).value_or(0);
    total_bytes_ += static_cast<std::uint64_t>(m.info.bytes);
    const AgentId agent = m.info.agent;
    memories_.emplace(agent, std::move(m));
  }
  if (tokens > 0) {
    bytes_per_token_ = static_cast<double>(total_bytes_) / static_cast<double>(tokens);
  }
}

const StoredMemory* StoreIndex::FindLocked(const AgentId& agent) const {
  auto it = memories_.find(agent);
  return it == memories_.end() ? nullptr : &it->second;
}

std::optional<StoredMemory> StoreIndex::Lookup(const AgentId& agent) const {
  MutexLock lock(mu_);
  const StoredMemory* m = FindLocked(agent);
  if (!m) return std::nullopt;
  return *m;
}

bool StoreIndex::Has(const AgentId& agent) const {
  MutexLock lock(mu_);
  return FindLocked(agent) != nullptr;
}

std::vector<MemoryInfo> StoreIndex::List() const {
  std::vector<MemoryInfo> out;
  {
    MutexLock lock(mu_);
    for (const auto& [agent, m] : memories_) out.push_back(m.info);
  }
  std::sort(out.begin(), out.end(),
            [](const MemoryInfo& a, const MemoryInfo& b) { return a.agent < b.agent; });
  return out;
}

std::vector<AgentId> StoreIndex::InternalIds() const {
  std::vector<AgentId> out;
  MutexLock lock(mu_);
  for (const auto& [agent, m] : memories_) {
    if (agent.internal()) out.push_back(agent);
  }
  return out;
}

std::size_t StoreIndex::Count(bool internal) const {
  MutexLock lock(mu_);
  std::size_t n = 0;
  for (const auto& entry : memories_) n += entry.first.internal() == internal ? 1 : 0;
  return n;
}

std::uint64_t StoreIndex::TotalBytes() const {
  MutexLock lock(mu_);
  return total_bytes_;
}

double StoreIndex::BytesPerToken() const {
  MutexLock lock(mu_);
  return bytes_per_token_;
}

void StoreIndex::Touch(const AgentId& agent, std::int64_t now) {
  MutexLock lock(mu_);
  auto it = memories_.find(agent);
  if (it != memories_.end()) it->second.info.last_used = now;
}

void StoreIndex::SetVerified(const AgentId& agent, long long generation, const FileStamp& stamp,
                             std::int64_t at) {
  MutexLock lock(mu_);
  auto it = memories_.find(agent);
  if (it == memories_.end() || it->second.generation != generation) return;
  it->second.verified = stamp;
  it->second.verified_at = at;
}

StoreIndex::SaveStart StoreIndex::BeginSave(const AgentId& agent) {
  MutexLock lock(mu_);
  removed_.wait(lock, [&]() REQUIRES(mu_) { return !removing_.count(agent); });
  ++in_use_[agent];  // from here the budget spares it
  SaveStart start;
  start.bytes_per_token = bytes_per_token_;
  if (const StoredMemory* m = FindLocked(agent)) {
    start.generation = m->generation;
    start.saved_tokens = m->info.tokens;
  }
  saving_[agent] = start.generation + 1;
  return start;
}

std::optional<long long> StoreIndex::AbortSave(const AgentId& agent) {
  MutexLock lock(mu_);
  ReleaseLocked(agent);
  auto it = saving_.find(agent);
  if (it == saving_.end()) return std::nullopt;
  const long long generation = it->second;
  saving_.erase(it);
  return generation;
}

void StoreIndex::CommitSave(StoredMemory memory) {
  const AgentId agent = memory.info.agent;
  const auto bytes = static_cast<std::uint64_t>(memory.info.bytes);
  MutexLock lock(mu_);
  ReleaseLocked(agent);
  saving_.erase(agent);
  if (const StoredMemory* current = FindLocked(agent)) {
    total_bytes_ -= static_cast<std::uint64_t>(current->info.bytes);
  }
  total_bytes_ += bytes;
  if (const std::uint64_t tokens = KnownTokens(memory.info.tokens).value_or(0); tokens > 0) {
    bytes_per_token_ = static_cast<double>(bytes) / static_cast<double>(tokens);
  }
  memories_.insert_or_assign(agent, std::move(memory));
}

std::optional<StoredMemory> StoreIndex::Hold(const AgentId& agent) {
  MutexLock lock(mu_);
  const StoredMemory* m = FindLocked(agent);
  if (!m) return std::nullopt;
  ++in_use_[agent];
  return *m;
}

void StoreIndex::Release(const AgentId& agent) {
  MutexLock lock(mu_);
  ReleaseLocked(agent);
}

void StoreIndex::ReleaseLocked(const AgentId& agent) {
  if (auto it = in_use_.find(agent); it != in_use_.end() && --it->second <= 0) in_use_.erase(it);
}

std::optional<StoredMemory> StoreIndex::EraseLocked(const AgentId& agent) {
  auto it = memories_.find(agent);
  if (it == memories_.end()) return std::nullopt;
  std::optional<StoredMemory> m = std::move(it->second);
  total_bytes_ -= static_cast<std::uint64_t>(m->info.bytes);
  memories_.erase(it);
  return m;
}

bool StoreIndex::Refresh(const AgentId& agent, const std::optional<StoredMemory>& on_disk) {
  MutexLock lock(mu_);
  if (removing_.count(agent) || in_use_.count(agent)) return false;
  const StoredMemory* current = FindLocked(agent);
  if (on_disk && current && current->state_file == on_disk->state_file) return true;  // the same
  const std::int64_t last_used = current ? current->info.last_used : 0;
  EraseLocked(agent);
  if (!on_disk) return true;
  StoredMemory m = *on_disk;
  m.info.last_used = std::max(m.info.last_used, last_used);
  total_bytes_ += static_cast<std::uint64_t>(m.info.bytes);
  memories_.insert_or_assign(agent, std::move(m));
  return true;
}

std::optional<StoredMemory> StoreIndex::Take(const AgentId& agent) {
  MutexLock lock(mu_);
  return EraseLocked(agent);
}

std::optional<StoredMemory> StoreIndex::StartRemoving(const AgentId& agent) {
  MutexLock lock(mu_);
  removed_.wait(lock, [&]() REQUIRES(mu_) { return !removing_.count(agent); });
  removing_.insert(agent);
  return EraseLocked(agent);
}

bool StoreIndex::InUse(const AgentId& agent) const {
  MutexLock lock(mu_);
  return in_use_.count(agent) || saving_.count(agent) || removing_.count(agent);
}

bool StoreIndex::StartRemovingAgain(const AgentId& agent) {
  MutexLock lock(mu_);
  removed_.wait(lock, [&]() REQUIRES(mu_) { return !removing_.count(agent); });
  if (memories_.count(agent) || saving_.count(agent)) return false;
  removing_.insert(agent);
  return true;
}

void StoreIndex::DoneRemoving(const AgentId& agent) {
  {
    MutexLock lock(mu_);
    removing_.erase(agent);
  }
  removed_.notify_all();
}

std::vector<StoredMemory> StoreIndex::ChooseBudgetVictims(const std::vector<AgentId>& keep) {
  if (budget_bytes_ == 0) return {};
  MutexLock lock(mu_);
  std::vector<const StoredMemory*> order;
  for (const auto& [agent, m] : memories_) {
    if (!in_use_.count(agent)) order.push_back(&m);  // a save in flight is spared
  }
  // Least recently used first; the agents to keep last.
  auto kept = [&](const StoredMemory* m) {
    return std::find(keep.begin(), keep.end(), m->info.agent) != keep.end();
  };
  std::sort(order.begin(), order.end(), [&](const StoredMemory* a, const StoredMemory* b) {
    if (kept(a) != kept(b)) return !kept(a);
    return a->info.last_used < b->info.last_used;
  });
  std::vector<AgentId> chosen;
  std::uint64_t bytes = total_bytes_;
  for (const StoredMemory* m : order) {
    if (bytes <= budget_bytes_) break;
    bytes -= static_cast<std::uint64_t>(m->info.bytes);
    chosen.push_back(m->info.agent);
  }
  // Out of the index under the lock: no other enforcement picks them, and
  // a save of one waits in BeginSave until its files are gone.
  std::vector<StoredMemory> victims;
  for (const AgentId& agent : chosen) {
    removing_.insert(agent);
    victims.push_back(*EraseLocked(agent));
  }
  return victims;
}

}  // namespace agentkv

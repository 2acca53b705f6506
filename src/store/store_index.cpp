#include "store/store_index.h"

#include <algorithm>

#include "store/sha256.h"

namespace agentkv {

void StoreIndex::Load(std::vector<StoredMemory> memories) {
  // Linked oldest first, by the last use their metadata records.
  std::stable_sort(memories.begin(), memories.end(),
                   [](const StoredMemory& a, const StoredMemory& b) {
                     return a.info.last_used < b.info.last_used;
                   });
  MutexLock lock(mu_);
  memories_.reserve(memories_.size() + memories.size());
  std::uint64_t tokens = 0;
  for (const StoredMemory& m : memories) {
    tokens += KnownTokens(m.info.tokens).value_or(0);
    PutLocked(m);
  }
  if (tokens > 0) {
    bytes_per_token_ = static_cast<double>(total_bytes_) / static_cast<double>(tokens);
  }
}

std::uint32_t StoreIndex::Intern(const std::string& text) {
  auto [it, added] = string_ids_.try_emplace(text, static_cast<std::uint32_t>(strings_.size()));
  if (added) strings_.push_back(text);
  return it->second;
}

StoreIndex::Entry StoreIndex::Pack(const StoredMemory& m) {
  Entry e;
  e.tokens = KnownTokens(m.info.tokens) ? *m.info.tokens : -1;
  e.bytes = m.info.bytes;
  e.created = m.info.created;
  e.updated = m.info.updated;
  e.last_used = m.info.last_used;
  e.generation = m.generation;
  e.checksum = m.checksum;
  e.prompt_key = m.prompt_key;
  e.fingerprint = Intern(m.fingerprint);
  e.scope = Intern(m.scope);
  const std::string prefix =
      Sha256Hex(m.info.agent.str()) + "." + std::to_string(m.generation) + ".";
  e.state_file_whole = m.state_file.rfind(prefix, 0) != 0;
  e.state_file = Intern(e.state_file_whole ? m.state_file : m.state_file.substr(prefix.size()));
  e.verified = m.verified;
  e.verified_at = m.verified_at;
  return e;
}

std::string StoreIndex::StateFileLocked(const AgentId& agent, const Entry& e) const {
  const std::string& kept = strings_[e.state_file];
  if (e.state_file_whole) return kept;
  return Sha256Hex(agent.str()) + "." + std::to_string(e.generation) + "." + kept;
}

StoredMemory StoreIndex::Unpack(const AgentId& agent, const Entry& e) const {
  return StoredMemory{MemoryInfo{agent, e.tokens >= 0 ? TokenCount(e.tokens) : std::nullopt,
                                 e.bytes, e.created, e.updated, e.last_used},
                      StateFileLocked(agent, e),
                      e.generation,
                      e.checksum,
                      strings_[e.fingerprint],
                      e.prompt_key,
                      e.verified,
                      e.verified_at,
                      strings_[e.scope]};
}

void StoreIndex::LinkNewestLocked(Entry* e) {
  e->older = newest_;
  e->newer = nullptr;
  if (newest_) newest_->newer = e;
  newest_ = e;
  if (!oldest_) oldest_ = e;
}

void StoreIndex::UnlinkLocked(Entry* e) {
  (e->older ? e->older->newer : oldest_) = e->newer;
  (e->newer ? e->newer->older : newest_) = e->older;
  e->older = e->newer = nullptr;
}

void StoreIndex::PutLocked(const StoredMemory& memory) {
  const AgentId& agent = memory.info.agent;
  Entry packed = Pack(memory);
  auto [it, added] = memories_.try_emplace(agent);
  Entry& e = it->second;
  if (!added) {
    total_bytes_ -= static_cast<std::uint64_t>(e.bytes);
    UnlinkLocked(&e);
  }
  e = packed;
  e.agent = &it->first;
  LinkNewestLocked(&e);
  total_bytes_ += static_cast<std::uint64_t>(e.bytes);
  if (agent.internal()) internal_.insert(agent);
}

StoreIndex::Entry* StoreIndex::FindLocked(const AgentId& agent) {
  auto it = memories_.find(agent);
  return it == memories_.end() ? nullptr : &it->second;
}

const StoreIndex::Entry* StoreIndex::FindLocked(const AgentId& agent) const {
  auto it = memories_.find(agent);
  return it == memories_.end() ? nullptr : &it->second;
}

std::optional<StoredMemory> StoreIndex::Lookup(const AgentId& agent) const {
  MutexLock lock(mu_);
  const Entry* e = FindLocked(agent);
  if (!e) return std::nullopt;
  return Unpack(agent, *e);
}

bool StoreIndex::Has(const AgentId& agent) const {
  MutexLock lock(mu_);
  return FindLocked(agent) != nullptr;
}

std::vector<MemoryInfo> StoreIndex::List() const {
  std::vector<MemoryInfo> out;
  {
    MutexLock lock(mu_);
    out.reserve(memories_.size());
    for (const auto& [agent, e] : memories_) {
      out.push_back(MemoryInfo{agent, e.tokens >= 0 ? TokenCount(e.tokens) : std::nullopt, e.bytes,
                               e.created, e.updated, e.last_used});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const MemoryInfo& a, const MemoryInfo& b) { return a.agent < b.agent; });
  return out;
}

StoreIndex::IdPage StoreIndex::PageOfIds(const std::string& filter, std::size_t offset,
                                         std::size_t limit, const std::vector<AgentId>& more,
                                         const Rank& rank) const {
  auto matches = [&](const AgentId& a) {
    return !a.internal() && (filter.empty() || a.str().find(filter) != std::string::npos);
  };
  struct Ranked {
    long long rank;
    AgentId id;
  };
  auto before = [](const Ranked& a, const Ranked& b) {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.id < b.id;
  };
  // The matching ids are copied out under the lock, in one pass; they are
  // ordered after it, so that placements wait only for the copy (ordering
  // 10^6 ids in place, through pointers into the map, held it 0.7 s).
  std::vector<Ranked> ids;
  {
    MutexLock lock(mu_);
    ids.reserve(memories_.size() - internal_.size() + more.size());
    for (const auto& [agent, e] : memories_) {
      if (!matches(agent)) continue;
      long long r = 0;
      if (rank) {
        const MemoryInfo info{agent,     e.tokens >= 0 ? TokenCount(e.tokens) : std::nullopt,
                              e.bytes,   e.created,
                              e.updated, e.last_used};
        r = rank(agent, &info);
      }
      ids.push_back({r, agent});
    }
    const std::size_t with_memory = ids.size();
    for (const AgentId& a : more) {  // a few: each looked for among the others of `more`
      auto same = [&](const Ranked& b) { return b.id == a; };
      if (matches(a) && !memories_.count(a) &&
          std::none_of(ids.begin() + static_cast<std::ptrdiff_t>(with_memory), ids.end(), same)) {
        ids.push_back({rank ? rank(a, nullptr) : 0, a});
      }
    }
  }
  IdPage page;
  page.total = ids.size();
  if (offset >= ids.size()) return page;
  // The page's ids in order, the others only on the right side of it: O(n).
  const std::size_t end = offset + std::min(ids.size() - offset, limit);
  const auto first = ids.begin() + static_cast<std::ptrdiff_t>(offset);
  const auto last = ids.begin() + static_cast<std::ptrdiff_t>(end);
  std::nth_element(ids.begin(), first, ids.end(), before);
  std::partial_sort(first, last, ids.end(), before);
  for (auto it = first; it != last; ++it) page.ids.push_back(std::move(it->id));
  return page;
}

std::vector<AgentId> StoreIndex::InternalIds() const {
  MutexLock lock(mu_);
  return std::vector<AgentId>(internal_.begin(), internal_.end());
}

std::size_t StoreIndex::Count(bool internal) const {
  MutexLock lock(mu_);
  return internal ? internal_.size() : memories_.size() - internal_.size();
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
  if (Entry* e = FindLocked(agent)) {
    e->last_used = now;
    UnlinkLocked(e);
    LinkNewestLocked(e);
  }
}

void StoreIndex::SetVerified(const AgentId& agent, long long generation, const FileStamp& stamp,
                             std::int64_t at) {
  MutexLock lock(mu_);
  Entry* e = FindLocked(agent);
  if (!e || e->generation != generation) return;
  e->verified = stamp;
  e->verified_at = at;
}

StoreIndex::SaveStart StoreIndex::BeginSave(const AgentId& agent) {
  MutexLock lock(mu_);
  removed_.wait(lock, [&]() REQUIRES(mu_) { return !removing_.count(agent); });
  ++in_use_[agent];  // from here the budget spares it
  SaveStart start;
  start.bytes_per_token = bytes_per_token_;
  if (const Entry* e = FindLocked(agent)) {
    start.generation = e->generation;
    if (e->tokens >= 0) start.saved_tokens = e->tokens;
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
  const AgentId& agent = memory.info.agent;
  const auto bytes = static_cast<std::uint64_t>(memory.info.bytes);
  MutexLock lock(mu_);
  ReleaseLocked(agent);
  saving_.erase(agent);
  if (const std::uint64_t tokens = KnownTokens(memory.info.tokens).value_or(0); tokens > 0) {
    bytes_per_token_ = static_cast<double>(bytes) / static_cast<double>(tokens);
  }
  PutLocked(memory);
}

std::optional<StoredMemory> StoreIndex::Hold(const AgentId& agent) {
  MutexLock lock(mu_);
  const Entry* e = FindLocked(agent);
  if (!e) return std::nullopt;
  ++in_use_[agent];
  return Unpack(agent, *e);
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
  StoredMemory m = Unpack(agent, it->second);
  total_bytes_ -= static_cast<std::uint64_t>(it->second.bytes);
  UnlinkLocked(&it->second);
  if (agent.internal()) internal_.erase(agent);
  memories_.erase(it);
  return m;
}

bool StoreIndex::Refresh(const AgentId& agent, const std::optional<StoredMemory>& on_disk) {
  MutexLock lock(mu_);
  if (removing_.count(agent) || in_use_.count(agent)) return false;
  const Entry* current = FindLocked(agent);
  if (on_disk && current && StateFileLocked(agent, *current) == on_disk->state_file) {
    return true;  // the same
  }
  const std::int64_t last_used = current ? current->last_used : 0;
  EraseLocked(agent);
  if (!on_disk) return true;
  StoredMemory m = *on_disk;
  m.info.last_used = std::max(m.info.last_used, last_used);
  PutLocked(m);
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
  MutexLock lock(mu_);
  if (budget_bytes_ == 0 || total_bytes_ <= budget_bytes_) return {};
  // Least recently used first, from the list's old end; the agents to keep
  // only if that is not enough.
  std::vector<const AgentId*> chosen, kept;
  std::uint64_t bytes = total_bytes_;
  for (const Entry* e = oldest_; e && bytes > budget_bytes_; e = e->newer) {
    if (in_use_.count(*e->agent)) continue;  // a save in flight is spared
    if (std::find(keep.begin(), keep.end(), *e->agent) != keep.end()) {
      kept.push_back(e->agent);
      continue;
    }
    bytes -= static_cast<std::uint64_t>(e->bytes);
    chosen.push_back(e->agent);
  }
  for (const AgentId* agent : kept) {
    if (bytes <= budget_bytes_) break;
    bytes -= static_cast<std::uint64_t>(FindLocked(*agent)->bytes);
    chosen.push_back(agent);
  }
  // Out of the index under the lock: no other enforcement picks them, and
  // a save of one waits in BeginSave until its files are gone.
  std::vector<StoredMemory> victims;
  for (const AgentId* agent : chosen) {
    const AgentId id = *agent;  // the key goes with the entry
    removing_.insert(id);
    victims.push_back(*EraseLocked(id));
  }
  return victims;
}

}  // namespace agentkv

#pragma once
// The store's index of agents' memories, in memory only: what each agent's
// metadata says, when it was last used, the bytes they hold against the
// budget, and which agents a call is reading, writing or deleting. It does
// no file I/O; Store (store.h) pairs it with the files (store_files.h).
//
// Thread-safe: one lock, never held while a caller does file I/O.
//
// Cost (measured by bench/run.py --only scale): an agent's entry is about 220 bytes
// plus its id beyond 15 characters (strings every memory shares, such as
// the fingerprint, are kept once); Lookup, Has, Touch, saves and counts are
// O(1); the budget's victims come from the least recently used end of a
// list, O(victims); List is O(n log n) and copies every entry.
//
// Holds and removals: a save (BeginSave to Commit or Release) and a fork's
// copy of its parent (Hold to Release) put the agent in use, and the budget
// spares it. An agent whose files are being deleted is out of the index
// already and "removing" until DoneRemoving: BeginSave and StartRemoving
// wait for it, so that a save never writes names a deletion is removing.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/file_system.h"
#include "agentkv/mutex.h"
#include "agentkv/token_count.h"

namespace agentkv {

struct MemoryInfo {
  AgentId agent;
  TokenCount tokens;  // unknown if its metadata held a negative count
  long long bytes = 0;
  std::int64_t created = 0;  // unix seconds
  std::int64_t updated = 0;
  std::int64_t last_used = 0;
};

// An agent's memory as its metadata describes it.
struct StoredMemory {
  MemoryInfo info;
  std::string state_file;  // H.<generation>.kv
  long long generation = 0;
  std::uint64_t checksum = 0;
  std::string fingerprint;
  std::uint64_t prompt_key = 0;
  // The state file's stamp when its checksum last matched, and when (unix
  // seconds); not kept on disk. See StoreFiles::Check.
  std::optional<FileStamp> verified;
  std::int64_t verified_at = 0;
  // Of the API key whose requests made it (see Prefixes::ScopeOf); "" if
  // unknown (saved before agentkv recorded it).
  std::string scope;
};

class StoreIndex {
 public:
  explicit StoreIndex(std::uint64_t budget_bytes) : budget_bytes_(budget_bytes) {}

  // Adds the memories found on disk by Store::Open, and measures the bytes
  // per token over them.
  void Load(std::vector<StoredMemory> memories);

  std::optional<StoredMemory> Lookup(const AgentId& agent) const;
  bool Has(const AgentId& agent) const;
  std::vector<MemoryInfo> List() const;  // by agent id
  // One page of agents' ids: of the agents (not internal) with memory and
  // those in `more` (say, holding a slot without memory yet), the ones
  // whose id contains `filter`; how many match, and those from `offset` on,
  // at most `limit`. In id order, or, with `rank`, largest rank first (ties
  // in id order); `rank` sees the agent's memory (null for one of `more`
  // without memory) and runs under the index's lock: it must not call the
  // index. O(n): the matching ids are copied out under the lock and
  // ordered after it.
  struct IdPage {
    std::size_t total = 0;
    std::vector<AgentId> ids;
  };
  using Rank = std::function<long long(const AgentId&, const MemoryInfo* memory)>;
  IdPage PageOfIds(const std::string& filter, std::size_t offset, std::size_t limit,
                   const std::vector<AgentId>& more, const Rank& rank = nullptr) const;
  std::vector<AgentId> InternalIds() const;  // in no order
  std::size_t Count(bool internal) const;    // memories that are internal, or not
  std::uint64_t TotalBytes() const;
  // Bytes per token of the last save (of Load before one), 0 before either.
  double BytesPerToken() const;
  void Touch(const AgentId& agent, std::int64_t now);
  // Records that generation `generation` of the agent's state file matched
  // its checksum at `at`, with `stamp`; nothing if another generation rules.
  void SetVerified(const AgentId& agent, long long generation, const FileStamp& stamp,
                   std::int64_t at);

  // What a save starting now must know.
  struct SaveStart {
    long long generation = 0;  // of the memory it replaces, 0 if none
    TokenCount saved_tokens;
    double bytes_per_token = 0;
  };
  // Waits while the agent is being removed, then puts it in use, writing
  // generation `generation + 1`.
  SaveStart BeginSave(const AgentId& agent);
  // Ends a save: `memory` replaces the agent's entry and counts as the
  // latest measure of bytes per token. Releases the hold of BeginSave.
  void CommitSave(StoredMemory memory);
  // Ends a save without a commit (and, as ever, one hold of the agent).
  // Returns the generation the save was writing, nullopt if none was.
  std::optional<long long> AbortSave(const AgentId& agent);
  // Puts the agent in use if it has a memory, and returns that memory.
  std::optional<StoredMemory> Hold(const AgentId& agent);
  // Ends one hold of BeginSave or Hold.
  void Release(const AgentId& agent);

  // Makes the agent's entry what its metadata on disk says now (`on_disk`,
  // nullopt: none), keeping its last use; a shared directory's other nodes
  // change it. False, and nothing changed, while the agent is being saved
  // or removed or is held here: this node's own view rules then.
  bool Refresh(const AgentId& agent, const std::optional<StoredMemory>& on_disk);

  // Takes the agent's memory out of the index (Store::Quarantine).
  std::optional<StoredMemory> Take(const AgentId& agent);
  // Waits while another removal of the agent runs, then takes its memory
  // out of the index and marks it removing.
  std::optional<StoredMemory> StartRemoving(const AgentId& agent);
  // The agent's files are gone: saves of it may go on.
  void DoneRemoving(const AgentId& agent);
  // True while a save or a hold has the agent, or it is being removed.
  bool InUse(const AgentId& agent) const;
  // For a removal tried again (Store::RetryDeletes): waits while another
  // removal of the agent runs, then marks it removing, unless it has memory
  // again or a save of it is in flight (false: nothing marked).
  bool StartRemovingAgain(const AgentId& agent);

  // Takes out of the index, and marks removing, the least recently used
  // memories until the budget holds; `keep` last, agents in use never.
  // Least recently used: in the order of their last use, save or refresh
  // (at Load, of the last use their metadata records).
  std::vector<StoredMemory> ChooseBudgetVictims(const std::vector<AgentId>& keep);

 private:
  // A memory as the index keeps it: StoredMemory without its agent id (the
  // map's key) and with its shared strings as numbers (see Intern); linked
  // into the list of memories by last use.
  struct Entry {
    const AgentId* agent = nullptr;  // the map's key
    Entry* older = nullptr;
    Entry* newer = nullptr;
    long long tokens = -1;  // -1: unknown
    long long bytes = 0;
    std::int64_t created = 0, updated = 0, last_used = 0;
    long long generation = 0;
    std::uint64_t checksum = 0;
    std::uint64_t prompt_key = 0;
    std::uint32_t fingerprint = 0, scope = 0;
    // The state file's name after "<hash>.<generation>." ("kv", or
    // "<node>.kv"), or, if it is not of that shape, its whole name.
    std::uint32_t state_file = 0;
    bool state_file_whole = false;
    std::optional<FileStamp> verified;
    std::int64_t verified_at = 0;
  };

  Entry* FindLocked(const AgentId& agent) REQUIRES(mu_);
  const Entry* FindLocked(const AgentId& agent) const REQUIRES(mu_);
  std::optional<StoredMemory> EraseLocked(const AgentId& agent) REQUIRES(mu_);
  void ReleaseLocked(const AgentId& agent) REQUIRES(mu_);
  // Adds the memory (replacing the agent's), as the most recently used.
  void PutLocked(const StoredMemory& memory) REQUIRES(mu_);
  Entry Pack(const StoredMemory& memory) REQUIRES(mu_);
  StoredMemory Unpack(const AgentId& agent, const Entry& e) const REQUIRES(mu_);
  std::string StateFileLocked(const AgentId& agent, const Entry& e) const REQUIRES(mu_);
  std::uint32_t Intern(const std::string& text) REQUIRES(mu_);
  void LinkNewestLocked(Entry* e) REQUIRES(mu_);
  void UnlinkLocked(Entry* e) REQUIRES(mu_);

  const std::uint64_t budget_bytes_;  // 0: no budget

  mutable Mutex mu_;
  std::unordered_map<AgentId, Entry> memories_ GUARDED_BY(mu_);
  Entry* oldest_ GUARDED_BY(mu_) = nullptr;
  Entry* newest_ GUARDED_BY(mu_) = nullptr;
  std::unordered_set<AgentId> internal_ GUARDED_BY(mu_);  // internal ids with memory
  // Strings many memories share (fingerprints, scopes, state file endings),
  // each kept once; only grows, by the distinct values seen.
  std::vector<std::string> strings_ GUARDED_BY(mu_);
  std::unordered_map<std::string, std::uint32_t> string_ids_ GUARDED_BY(mu_);
  std::uint64_t total_bytes_ GUARDED_BY(mu_) = 0;
  double bytes_per_token_ GUARDED_BY(mu_) = 0;
  std::unordered_map<AgentId, int> in_use_ GUARDED_BY(mu_);
  // The generation each save in flight writes.
  std::unordered_map<AgentId, long long> saving_ GUARDED_BY(mu_);
  std::unordered_set<AgentId> removing_ GUARDED_BY(mu_);
  std::condition_variable_any removed_;  // signals removing_ shrank
};

}  // namespace agentkv

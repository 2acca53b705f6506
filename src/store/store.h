#pragma once
// The memory directory: the only code that touches it. llama-server writes
// slot files into it (it is llama-server's --slot-save-path); the store names
// them, makes every save atomic, checks every file before it is restored,
// keeps the index of agents' memories and holds the directory to a budget.
//
// Layout, for an agent whose id hashes to H (SHA-256, never the id itself):
//   H.<generation>.kv   the KV state, as llama-server wrote it (in a shared
//                       directory H.<generation>.<node>.kv: see below)
//   H.meta              JSON: agent id, fingerprint, file, tokens, bytes,
//                       checksum, created/updated times
//   *.tmp               a save or metadata write in progress
//   quarantine/         files that failed a check, kept aside, never reused,
//                       named <time>-<sequence>.<original name>, with a
//                       .reason file; bounded in count and bytes, oldest
//                       deleted first
// Only names of these shapes are agentkv's: anything else in the directory
// is left alone.
// A save writes a new generation, then the metadata that points to it, then
// removes the old generation: a crash at any instant leaves the old memory or
// the new one, and Open() removes whatever a crash left over.
//
// A shared directory (StoreOptions::node set): several agentkv nodes use one
// memory directory on shared storage. Each node writes only names of its own
// (state files, temporaries and quarantine entries carry its node name);
// H.meta, replaced by an atomic rename, is the single source of truth for an
// agent's latest memory, and the index is a cache of it: Refresh reads it
// again. Concurrent saves of one agent on two nodes leave the metadata of
// the last rename, which names a complete, checked file (last writer wins);
// a state file no metadata names is garbage, removed by the node that wrote
// it at its next start or by any node an hour later. A node never deletes or
// quarantines a memory whose metadata names a file other than the one it
// judged. What the storage must give: atomic rename within the directory,
// fsync that makes a file durable, and a fresh read of a file opened by name
// after another client replaced it (NFS close-to-open consistency); no locks.
//
// Thread-safe. Calls that name an agent must not run concurrently for the
// same agent (residency guarantees it); they do file I/O without holding the
// index lock. All file I/O goes through the FileSystem given (the real one
// by default), which tests replace to inject errors and crashes.
//
// A Store is the pair of its index (store_index.h: what is saved, LRU, the
// budget, which agents are in use) and its files (store_files.h: names,
// the save protocol, checks, quarantine); this class decides the order.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/file_system.h"
#include "agentkv/mutex.h"
#include "agentkv/status.h"
#include "agentkv/token_count.h"
#include "store/store_files.h"
#include "store/store_index.h"

namespace agentkv {

struct StoreOptions {
  std::uint64_t budget_bytes = 0;             // 0: no budget
  std::uint64_t min_free_bytes = 256u << 20;  // keep this much disk free
  std::uint64_t quarantine_max_files = 64;    // files kept in quarantine/
  std::uint64_t quarantine_max_bytes = 1ull << 30;
  // This node's name in a memory directory shared with other agentkv nodes
  // ([a-z0-9-]{1,32}, unique among them); "" if the directory is this one's.
  std::string node;
};

// An agent's file, checked and ready for llama-server's restore.
struct RestoreFile {
  std::string name;  // relative to the memory directory
  TokenCount tokens;
  std::uint64_t prompt_key = 0;  // of the request that last changed the saved KV
};

class Store {
 public:
  using WallClock = std::function<std::int64_t()>;  // unix seconds

  // `files` must outlive the store.
  Store(std::filesystem::path dir, std::string fingerprint, StoreOptions options = {},
        WallClock now = nullptr, FileSystem& files = RealFileSystem());

  const std::filesystem::path& dir() const { return files_.dir(); }

  // Creates the directory, removes temporaries and orphans a crash left
  // (agentkv's names only), loads every metadata file and quarantines the
  // ones that are unreadable, point to a missing or wrong-sized file, or
  // carry another fingerprint. One bad entry never stops it: it is logged
  // and skipped. Returns kIo only if the directory cannot be created or listed.
  Status Open();

  bool shared() const { return files_.shared(); }
  // A shared directory: reads the agent's metadata from disk (another node
  // may have saved or deleted the memory since this one looked), brings the
  // index up to date, and returns the state file it names. Otherwise, and
  // for an agent being saved or removed here, what the index holds.
  std::optional<std::string> Refresh(const AgentId& agent);
  // The state file of the agent's memory as the index knows it.
  std::optional<std::string> StateFile(const AgentId& agent) const;

  bool HasMemory(const AgentId& agent) const;
  std::optional<MemoryInfo> Find(const AgentId& agent) const;
  std::vector<MemoryInfo> List() const;  // agents' and internal memories (prefix snapshots)
  // One page of agents' ids (see StoreIndex::PageOfIds).
  StoreIndex::IdPage PageOfIds(const std::string& filter, std::size_t offset, std::size_t limit,
                               const std::vector<AgentId>& more,
                               const StoreIndex::Rank& rank = nullptr) const {
    return index_.PageOfIds(filter, offset, limit, more, rank);
  }
  std::uint64_t TotalBytes() const;
  std::size_t AgentCount() const;            // agents only
  std::vector<AgentId> InternalIds() const;  // internal memories only (prefix snapshots)
  // The scope (API key) whose requests `agent` runs for, recorded with its
  // next save unless its memory already has one. The first claim holds:
  // kept in memory until that save (or until the agent is removed), or
  // until no request holds it and the agent has nothing to save. Each
  // Claim is ended by one Unclaim.
  void Claim(const AgentId& agent, const std::string& scope);
  // Ends one Claim. The last one drops the claim if `resident` is false and
  // the agent has no memory and no save in flight: a client that invents
  // ids leaves nothing behind.
  void Unclaim(const AgentId& agent, bool resident);
  // Drops every claim no request holds, of an agent without memory or a
  // save in flight that `resident` says holds no slot (an agent evicted
  // with nothing to save since its last Unclaim). Returns how many remain.
  std::size_t SweepClaims(const std::function<bool(const AgentId&)>& resident);
  std::size_t ClaimCount() const;
  // The scope of the agent's memory, else its claim; nullopt if neither.
  std::optional<std::string> ScopeOf(const AgentId& agent) const;
  // Marks the memory as used now (for the budget's LRU order).
  void Touch(const AgentId& agent);
  // Page cache advice on the agent's state file (FileSystem::Advise): read
  // it ahead of a restore, or let it go once the agent is done.
  void Advise(const AgentId& agent, FileSystem::Advice advice);

  // Save, step 1: returns the temporary file name llama-server must write to.
  // Returns kIo if the disk lacks room for about `expected_tokens` (the
  // agent's saved count if unknown or negative; none if that is unknown
  // too). Waits while the budget removes the agent's older memory, so that
  // the two never touch the same names.
  Result<std::string> BeginSave(const AgentId& agent, TokenCount expected_tokens);
  // Save, step 2: makes the temporary the agent's memory (see the layout),
  // recording `tokens` (unknown if negative) and `prompt_key` with it. On
  // failure (a write, fsync or rename failed) the old memory stays and the
  // temporary is removed.
  Status CommitSave(const AgentId& agent, long long tokens, std::uint64_t prompt_key = 0);
  // Save, abandoned: removes the temporary.
  void AbortSave(const AgentId& agent);

  // Checks the agent's file (fingerprint, size, checksum) and returns it for
  // llama-server's restore. A file proven bad (another fingerprint, wrong
  // size, checksum mismatch, missing) is quarantined and kNotFound returned;
  // a read error that proves nothing (EIO, too many open files) returns kIo
  // and leaves the file in place. Either way the agent is prefilled instead.
  Result<RestoreFile> PrepareRestore(const AgentId& agent);

  // Moves the agent's files to quarantine/ and forgets them.
  void Quarantine(const AgentId& agent, const std::string& reason);
  // Deletes the agent's files (in a shared directory, its latest ones).
  // Returns true if it had any. kIo if a file could not be removed: the
  // agent is forgotten all the same (this process never restores it) and
  // the deletion is tried again (RetryDeletes) until it is done.
  Result<bool> Remove(const AgentId& agent);
  // Tries again the deletions that failed (Remove, the budget), unless the
  // agent was saved again since. Returns how many still failed. Run by
  // Remove and EnforceBudget; call it now and then besides.
  std::size_t RetryDeletes();
  // Gives `child` a copy of `parent`'s memory; the copy must match the
  // parent's checksum, else kIo and the child has none. kNotFound if the
  // parent has none, kConflict if the budget cannot hold both copies. Makes
  // room under the budget, sparing the two. The caller keeps the parent from
  // being saved meanwhile, and checks it first with CheckFork: Fork replaces
  // the child's memory before it finds out that the parent's file is bad.
  Status Fork(const AgentId& parent, const AgentId& child);
  // What Fork checks before it touches the child: kNotFound if the parent
  // has no memory or its file fails its check (then quarantined), kConflict
  // if the budget cannot hold two copies.
  Status CheckFork(const AgentId& parent);

  // Deletes least recently used memories until the budget holds, sparing
  // `keep` while others remain, and any agent with a save in flight. Safe to
  // run concurrently with itself and with saves of other agents: a victim
  // leaves the index before its files go. Returns the agents whose memory went.
  std::vector<AgentId> EnforceBudget(const std::vector<AgentId>& keep = {});

  // Quarantine events since start, for logs and tests.
  int quarantined() const;
  QuarantineUsage quarantine_usage() const;
  // Bytes per 1K tokens of the last save (what sizes a box), 0 before one.
  long long bytes_per_1k_tokens() const;

 private:
  // Commits the temporary of `agent`; with `expected`, only if its checksum
  // matches (a fork's copy).
  Status Commit(const AgentId& agent, TokenCount tokens, std::uint64_t prompt_key,
                std::optional<std::uint64_t> expected, const std::string& scope);
  // Deletes the files of an agent StoreIndex::StartRemoving took out;
  // false if another node saved it since (then they stay); kIo if a file
  // could not be removed (then retried by RetryDeletes).
  Result<bool> DeleteFiles(const AgentId& agent, const std::string& state_file);
  // Ends the agent's save, if one is in flight, and removes its
  // temporaries: those of generation `fallback` if none was.
  void EndSave(const AgentId& agent, long long fallback);
  Status BudgetHoldsTwo(const StoredMemory& parent_memory, const AgentId& parent) const;

  const StoreOptions options_;
  const WallClock now_;
  StoreIndex index_;
  StoreFiles files_;
  Mutex undeleted_mu_;
  // Agents whose files could not all be removed, with their state file.
  std::unordered_map<AgentId, std::string> undeleted_ GUARDED_BY(undeleted_mu_);
  mutable Mutex claims_mu_;
  struct ClaimRecord {
    std::string scope;
    int holders = 0;  // requests in flight
  };
  std::unordered_map<AgentId, ClaimRecord> claims_ GUARDED_BY(claims_mu_);
};

}  // namespace agentkv

#pragma once
// The memory directory's files, as store.h lays them out: their names, the
// atomic save protocol, metadata, checksums, quarantine. Knows nothing of
// the index; Store (store.h) decides which agent's files to touch when.
//
// Thread-safe for different agents; calls for one agent must not overlap
// (Store and residency see to it). Every call does file I/O through the
// FileSystem it was given, and none holds a lock while doing it.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "agentkv/file_system.h"
#include "agentkv/status.h"
#include "store/checksum.h"
#include "store/quarantine.h"
#include "store/store_index.h"

namespace agentkv {

class StoreFiles {
 public:
  using WallClock = std::function<std::int64_t()>;  // unix seconds

  // `node`: this node's name in a memory directory shared with other
  // agentkv nodes (see store.h), "" when the directory is this daemon's alone.
  StoreFiles(FileSystem& files, std::filesystem::path dir, std::string fingerprint,
             QuarantineBounds bounds, WallClock now, std::string node = "");

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& fingerprint() const { return fingerprint_; }
  bool shared() const { return !node_.empty(); }
  // The name of every file of `agent` starts with it.
  static std::string Hash(const AgentId& agent);
  // H.<generation>.kv, or H.<generation>.<node>.kv in a shared directory.
  std::string StateName(const std::string& hash, long long generation) const;
  // The temporary a save of that generation writes: its state name + .tmp
  std::string SaveTempName(const std::string& hash, long long generation) const;
  // True if `name` is "[a-z0-9-]{1,32}": a node name fit for file names.
  static bool ValidNodeName(const std::string& name);

  // Creates the directory and quarantine/, removes the temporaries a crash
  // left, loads every metadata file (quarantining the bad ones) and removes
  // the state files no metadata points to. kIo if the directory cannot be
  // created or listed; one bad entry never stops it. In a shared directory
  // it removes only this node's leftovers, and other nodes' once they are
  // older than kForeignLeftoverSeconds (a live node's are younger).
  Result<std::vector<StoredMemory>> Recover();
  static constexpr std::int64_t kForeignLeftoverSeconds = 3600;

  // A shared directory: the agent's metadata as it is on disk now, checked
  // as Recover checks it (a bad one is quarantined); nullopt if it has none.
  std::optional<StoredMemory> ReadCurrent(const AgentId& agent);

  // The save protocol from a complete temporary (see store.h): checks it
  // (fsync; with `expected`, its checksum), renames it to e->state_file,
  // writes the metadata, removes `old_state_file`. Fills e->info.bytes,
  // e->checksum and e->verified. On failure the old memory rules; temporaries are left for
  // RemoveTemporaries.
  Status CommitSave(StoredMemory* e, const std::string& old_state_file,
                    std::optional<std::uint64_t> expected);
  // Removes what a save of `generation` may have left: its temporaries.
  void RemoveTemporaries(const std::string& hash, long long generation);
  // Checks a memory's state file before a restore: kNotFound with the
  // reason if it is proven bad, kIo if it cannot be read now. A file whose
  // checksum matched less than kTrustVerified ago (e.verified_at, against
  // `now`) and whose stamp has not changed since is not read again; a file
  // read in full that matches sets `*verified` to the stamp it had.
  Status Check(const StoredMemory& e, std::int64_t now, std::optional<FileStamp>* verified);
  // Long enough for agents that return within minutes, short enough that a
  // file is read from the disk again (not the page cache that saw it written)
  // before it is trusted much longer.
  static constexpr std::int64_t kTrustVerifiedSeconds = 600;

  // Page cache advice on a state file (FileSystem::Advise).
  void Advise(const std::string& state_file, FileSystem::Advice advice);
  // Copies a state file to a save's temporary (a fork).
  Status Copy(const std::string& state_file, const std::string& temp);
  // Deletes an agent's files; the metadata first. In a shared directory,
  // only if its metadata still points to `state_file` (another node may have
  // saved the agent since); returns false if it left them for that reason.
  // kIo if a file could not be removed (a missing one is removed): the
  // message names it and why.
  Result<bool> Delete(const AgentId& agent, const std::string& state_file);
  // Bytes free in the directory's file system, nullopt if unknown.
  std::optional<std::uint64_t> FreeBytes();

  // Moves an agent's files to quarantine/ with the reason (see Quarantine).
  // In a shared directory the metadata goes only if it still names
  // `state_file`. `new_event`: counts in quarantined() (false: part of an
  // event counted).
  void Quarantine(const std::string& hash, const std::string& state_file, const std::string& reason,
                  bool new_event = true);
  int quarantined() const { return quarantine_.events(); }
  QuarantineUsage quarantine_usage() const { return quarantine_.usage(); }

 private:
  // Reads the whole state file: size and checksum as in its metadata.
  Status CheckDigest(const StoredMemory& e);

  struct Listing {
    std::vector<std::string> metas, states;
  };
  Result<Listing> ListAndRemoveTemporaries();
  // The memory a metadata file describes, checked; a bad one is quarantined.
  // One in a format newer than kMetaFormat is left as it is, with *newer set.
  std::optional<StoredMemory> LoadMeta(const std::string& meta_name, bool* newer = nullptr);
  // The metadata's state file on disk now, "" if it has none or is unreadable.
  std::string StateFileOnDisk(const std::string& hash);
  // May Recover remove this leftover (a temporary or an orphan state file)?
  bool MayRemoveLeftover(const std::string& name);
  // Removes `states` no metadata points to; keeps aside those whose
  // metadata could not be loaded (`unloaded` hashes).
  void RemoveOrphans(const std::vector<std::string>& states,
                     const std::vector<StoredMemory>& loaded,
                     const std::unordered_set<std::string>& unloaded);
  Result<FileDigest> CheckTemp(const std::filesystem::path& temp,
                               std::optional<std::uint64_t> expected);
  Status WriteMeta(const StoredMemory& e);
  // H.meta.tmp, or H.meta.<node>.tmp in a shared directory.
  std::string MetaTempName(const std::string& hash) const;
  static void LogIfFailed(const Status& s);
  void RemoveQuietly(const std::filesystem::path& file);

  FileSystem& files_;
  const std::filesystem::path dir_;
  const std::string fingerprint_;
  const WallClock now_;
  const std::string node_;
  class Quarantine quarantine_;
};

}  // namespace agentkv

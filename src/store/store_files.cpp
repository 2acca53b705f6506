#include "store/store_files.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <thread>
#include <unordered_set>

#include "store/file_names.h"
#include "store/sha256.h"
#include "store/store_meta.h"

namespace agentkv {

namespace fs = std::filesystem;

namespace {
constexpr const char* kQuarantine = "quarantine";
using Kind = FileNameParts::Kind;
}  // namespace

StoreFiles::StoreFiles(FileSystem& files, fs::path dir, std::string fingerprint,
                       QuarantineBounds bounds, WallClock now, std::string node)
    : files_(files),
      dir_(std::move(dir)),
      fingerprint_(std::move(fingerprint)),
      now_(std::move(now)),
      node_(std::move(node)),
      quarantine_(files, dir_ / kQuarantine, bounds, now_, node_) {}

std::string StoreFiles::Hash(const AgentId& agent) { return Sha256Hex(agent.str()); }

bool StoreFiles::ValidNodeName(const std::string& name) { return IsNodeName(name); }

std::string StoreFiles::StateName(const std::string& hash, long long generation) const {
  return StateFileName(hash, generation, node_);
}

std::string StoreFiles::SaveTempName(const std::string& hash, long long generation) const {
  return TempFileName(StateName(hash, generation));
}

bool StoreFiles::MayRemoveLeftover(const std::string& name) {
  if (!shared() || ParseFileName(name).node == node_) return true;
  // Another node's (or, unnamed, a single daemon's that used the directory
  // before): only once no live save can be writing it.
  Result<FileStamp> stamp = files_.Stamp(dir_ / name);
  return stamp.ok() && stamp->mtime_ns / 1000000000 < now_() - kForeignLeftoverSeconds;
}

// For steps whose failure changes nothing of what follows: nothing relies
// on their outcome, and the next Open() tidies what they left.
void StoreFiles::LogIfFailed(const Status& s) {
  if (!s.ok()) spdlog::debug("{}", s.message());
}

void StoreFiles::RemoveQuietly(const fs::path& file) { LogIfFailed(files_.Remove(file).status()); }

Result<std::vector<StoredMemory>> StoreFiles::Recover() {
  if (Status s = files_.CreateDirs(dir_ / kQuarantine); !s.ok()) {
    return Status::Error(ErrorCode::kIo,
                         "cannot create memory directory " + dir_.string() + ": " + s.message());
  }
  if (Status s = quarantine_.Check(); !s.ok()) return s;
  Result<Listing> listing = ListAndRemoveTemporaries();
  if (!listing.ok()) return listing.status();
  // Each metadata file is a read, a parse and a stat: spread over the cores
  // (LoadMeta is safe to run concurrently: its quarantines lock).
  const std::vector<std::string>& metas = listing->metas;
  std::vector<std::optional<StoredMemory>> found(metas.size());
  std::unique_ptr<bool[]> newer(new bool[metas.size()]());  // written by threads apart
  const std::size_t cores = std::max(1U, std::thread::hardware_concurrency());
  const std::size_t threads = std::min<std::size_t>({cores, 8, metas.size() / 1024 + 1});
  std::vector<std::thread> loaders;
  for (std::size_t t = 1; t < threads; ++t) {
    loaders.emplace_back([&, t] {
      for (std::size_t i = t; i < metas.size(); i += threads) {
        found[i] = LoadMeta(metas[i], &newer[i]);
      }
    });
  }
  for (std::size_t i = 0; i < metas.size(); i += threads) found[i] = LoadMeta(metas[i], &newer[i]);
  for (std::thread& loader : loaders) loader.join();
  // A downgrade: refuse the directory, changing nothing of those agents.
  const std::size_t newer_count =
      static_cast<std::size_t>(std::count(newer.get(), newer.get() + metas.size(), true));
  if (newer_count > 0) {
    return Status::Error(
        ErrorCode::kInvalidArgument,
        "memory directory " + dir_.string() + " holds " + std::to_string(newer_count) +
            " agents' memory written by a newer agentkv (metadata format above " +
            std::to_string(kMetaFormat) +
            ", which this version reads): run that version, or move the directory aside; "
            "their files were left as they are");
  }
  std::vector<StoredMemory> loaded;
  loaded.reserve(metas.size());
  std::unordered_set<std::string> unloaded;  // hashes whose metadata was quarantined
  for (std::size_t i = 0; i < metas.size(); ++i) {
    if (found[i]) {
      loaded.push_back(std::move(*found[i]));
    } else {
      unloaded.insert(metas[i].substr(0, 64));
    }
  }
  RemoveOrphans(listing->states, loaded, unloaded);
  quarantine_.Prune();
  return loaded;
}

Result<StoreFiles::Listing> StoreFiles::ListAndRemoveTemporaries() {
  Result<std::vector<FileEntry>> entries = files_.ListFiles(dir_, /*sizes=*/false);
  if (!entries.ok()) {
    return Status::Error(ErrorCode::kIo, "cannot list memory directory " + dir_.string() + ": " +
                                             entries.status().message());
  }
  Listing out;
  for (const FileEntry& f : entries.value()) {
    switch (ParseFileName(f.name).kind) {
      case Kind::kTemp:                         // a save or metadata write cut short
        if (!MayRemoveLeftover(f.name)) break;  // another node's, maybe in progress
        if (Result<bool> rm = files_.Remove(dir_ / f.name); !rm.ok()) {
          spdlog::warn("cannot remove the leftover {}: {}", f.name, rm.status().message());
        }
        break;
      case Kind::kMeta:
        out.metas.push_back(f.name);
        break;
      case Kind::kState:
        out.states.push_back(f.name);
        break;
      case Kind::kForeign:
        break;  // not ours: left alone
    }
  }
  return out;
}

std::optional<StoredMemory> StoreFiles::LoadMeta(const std::string& meta_name, bool* newer) {
  const std::string hash = meta_name.substr(0, 64);
  std::string why;
  std::optional<StoredMemory> e;
  // In a shared directory another node may replace the metadata and delete
  // the state file it named between two reads here: read it once more then.
  for (int attempt = 0; attempt < (shared() ? 2 : 1); ++attempt) {
    std::string text;
    if (!files_.Read(dir_ / meta_name, [&](const char* d, std::size_t n) { text.append(d, n); })
             .ok()) {
      Result<bool> exists = files_.Exists(dir_ / meta_name);
      if (exists.ok() && !exists.value()) return std::nullopt;  // deleted meanwhile
      text.clear();  // unreadable reads as empty, which no metadata is
    }
    if (MetaFormatOf(text) > kMetaFormat) {  // a newer agentkv's: not ours to judge
      if (newer) *newer = true;
      return std::nullopt;
    }
    std::variant<StoredMemory, std::string> decoded = DecodeMeta(text, hash);
    why.clear();
    e.reset();
    if (auto* failed = std::get_if<std::string>(&decoded)) {
      why = *failed;
      break;
    }
    e = std::move(std::get<StoredMemory>(decoded));
    if (!NamesStateOf(e->state_file, hash, e->generation)) {
      why = "metadata points outside its agent";
      break;
    }
    if (Result<std::uint64_t> size = files_.FileSize(dir_ / e->state_file);
        !size.ok() || static_cast<long long>(size.value()) != e->info.bytes) {
      why = "state file missing or of the wrong size";
      continue;
    }
    if (e->fingerprint != fingerprint_) why = "saved with another model or settings";
    break;
  }
  if (why.empty()) return e;
  spdlog::warn("quarantining memory {}: {}", hash.substr(0, 12), why);
  // Only a state file of this agent's own naming goes along.
  const bool own_state = e && NamesStateOf(e->state_file, hash, e->generation);
  Quarantine(hash, own_state ? e->state_file : "", why);
  return std::nullopt;
}

std::optional<StoredMemory> StoreFiles::ReadCurrent(const AgentId& agent) {
  return LoadMeta(MetaFileName(Hash(agent)));
}

std::string StoreFiles::StateFileOnDisk(const std::string& hash) {
  std::string text;
  if (!files_
           .Read(dir_ / MetaFileName(hash),
                 [&](const char* d, std::size_t n) { text.append(d, n); })
           .ok()) {
    return "";
  }
  std::variant<StoredMemory, std::string> decoded = DecodeMeta(text, hash);
  auto* e = std::get_if<StoredMemory>(&decoded);
  return e ? e->state_file : "";
}

void StoreFiles::RemoveOrphans(const std::vector<std::string>& states,
                               const std::vector<StoredMemory>& loaded,
                               const std::unordered_set<std::string>& unloaded) {
  std::unordered_set<std::string> referenced;
  for (const StoredMemory& e : loaded) referenced.insert(e.state_file);
  for (const std::string& name : states) {
    if (referenced.count(name)) continue;
    Result<bool> exists = files_.Exists(dir_ / name);
    if (!exists.ok() || !exists.value()) continue;  // quarantined with its metadata
    if (!MayRemoveLeftover(name)) continue;         // another node's save, maybe in progress
    if (unloaded.count(name.substr(0, 64))) {
      // Its metadata could not be read, maybe only for now: kept aside.
      Quarantine(name.substr(0, 64), name, "the state of metadata that could not be loaded",
                 /*new_event=*/false);
    } else if (Result<bool> rm = files_.Remove(dir_ / name); !rm.ok()) {
      spdlog::warn("cannot remove the orphan {}: {}", name, rm.status().message());
    }
  }
}

Result<FileDigest> StoreFiles::CheckTemp(const fs::path& temp,
                                         std::optional<std::uint64_t> expected) {
  if (Status s = files_.SyncFile(temp); !s.ok()) return s;
  Result<FileDigest> digest = DigestFile(files_, temp);
  if (digest.ok() && expected && digest->xxh64 != *expected) {
    return Status::Error(ErrorCode::kIo, "the copy of the memory does not match its checksum");
  }
  return digest;
}

Status StoreFiles::CommitSave(StoredMemory* e, const std::string& old_state_file,
                              std::optional<std::uint64_t> expected) {
  const std::string hash = Hash(e->info.agent);
  const fs::path temp = dir_ / SaveTempName(hash, e->generation);
  Result<FileDigest> digest = CheckTemp(temp, expected);
  Status s = digest.ok() ? files_.Rename(temp, dir_ / e->state_file) : digest.status();
  if (!s.ok()) return s;
  e->info.bytes = static_cast<long long>(digest->size);
  e->checksum = digest->xxh64;
  // In a shared directory, the file another node's save made the memory.
  const std::string replaced = shared() ? StateFileOnDisk(hash) : "";
  if (s = WriteMeta(*e); !s.ok()) {
    RemoveQuietly(dir_ / e->state_file);  // the old metadata still rules
    return s;
  }
  // After the rename, which changed its status-change time.
  if (Result<FileStamp> stamp = files_.Stamp(dir_ / e->state_file); stamp.ok()) {
    e->verified = stamp.value();
  }
  // From here the new metadata rules: never delete what it points to.
  if (Status synced = files_.SyncDir(dir_); !synced.ok()) {
    spdlog::warn("saved agent {} but could not fsync the directory: {}", e->info.agent.ForLog(),
                 synced.message());
  }
  for (const std::string& old : {old_state_file, replaced}) {
    if (!old.empty() && old != e->state_file) RemoveQuietly(dir_ / old);
  }
  return Status::Ok();
}

Status StoreFiles::WriteMeta(const StoredMemory& e) {
  const std::string hash = Hash(e.info.agent);
  const fs::path temp = dir_ / MetaTempName(hash);
  Status s = files_.WriteFile(temp, EncodeMeta(e));
  if (s.ok()) s = files_.SyncFile(temp);
  if (s.ok()) s = files_.Rename(temp, dir_ / MetaFileName(hash));
  return s;
}

std::string StoreFiles::MetaTempName(const std::string& hash) const {
  return MetaTempFileName(hash, node_);
}

void StoreFiles::RemoveTemporaries(const std::string& hash, long long generation) {
  RemoveQuietly(dir_ / SaveTempName(hash, generation));
  RemoveQuietly(dir_ / MetaTempName(hash));
}

Status StoreFiles::Check(const StoredMemory& e, std::int64_t now,
                         std::optional<FileStamp>* verified) {
  if (e.fingerprint != fingerprint_) {
    return Status::Error(ErrorCode::kNotFound, "saved with another model or settings");
  }
  // Taken before the read: a change during it shows at the next check.
  const Result<FileStamp> stamp = files_.Stamp(dir_ / e.state_file);
  if (stamp.ok() && e.verified && *e.verified == stamp.value() &&
      now - e.verified_at < kTrustVerifiedSeconds) {
    return Status::Ok();
  }
  Status s = CheckDigest(e);
  if (s.ok() && stamp.ok()) *verified = stamp.value();
  return s;
}

Status StoreFiles::CheckDigest(const StoredMemory& e) {
  std::string why;
  if (Result<FileDigest> d = DigestFile(files_, dir_ / e.state_file); !d.ok()) {
    Result<FileSystem::Kind> kind = files_.KindOf(dir_ / e.state_file);
    if (kind.ok() && kind.value() == FileSystem::Kind::kNone) {
      why = "state file missing";
    } else if (kind.ok() && kind.value() == FileSystem::Kind::kOther) {
      why = "state file is a symbolic link (or not a file at all)";
    } else {
      // Proves nothing about the file: try again next time.
      return Status::Error(ErrorCode::kIo, d.status().message());
    }
  } else if (static_cast<long long>(d->size) != e.info.bytes) {
    why = "state file has " + std::to_string(d->size) + " bytes, expected " +
          std::to_string(e.info.bytes);
  } else if (d->xxh64 != e.checksum) {
    why = "state file checksum mismatch";
  }
  return why.empty() ? Status::Ok() : Status::Error(ErrorCode::kNotFound, why);
}

void StoreFiles::Advise(const std::string& state_file, FileSystem::Advice advice) {
  files_.Advise(dir_ / state_file, advice);
}

Status StoreFiles::Copy(const std::string& state_file, const std::string& temp) {
  Status s = files_.CopyFile(dir_ / state_file, dir_ / temp);
  if (s.ok()) return s;
  return Status::Error(ErrorCode::kIo, "cannot copy memory: " + s.message());
}

Result<bool> StoreFiles::Delete(const AgentId& agent, const std::string& state_file) {
  const std::string hash = Hash(agent);
  if (shared()) {
    const std::string on_disk = StateFileOnDisk(hash);
    if (!on_disk.empty() && on_disk != state_file) return false;  // saved since, elsewhere
  }
  // The metadata first: without it the state file is an orphan, never restored.
  if (Result<bool> meta = files_.Remove(dir_ / MetaFileName(hash)); !meta.ok())
    return meta.status();
  if (!state_file.empty()) {
    if (Result<bool> state = files_.Remove(dir_ / state_file); !state.ok()) return state.status();
  }
  if (Status synced = files_.SyncDir(dir_); !synced.ok()) {
    // The files are gone from this process's view; a crash now could bring
    // the metadata back, which names a checked file or fails its check.
    spdlog::warn("deleted the memory of agent {} but could not fsync the directory: {}",
                 agent.ForLog(), synced.message());
  }
  return true;
}

std::optional<std::uint64_t> StoreFiles::FreeBytes() {
  Result<std::uint64_t> free = files_.FreeBytes(dir_);
  if (!free.ok()) return std::nullopt;
  return free.value();
}

void StoreFiles::Quarantine(const std::string& hash, const std::string& state_file,
                            const std::string& reason, bool new_event) {
  // In a shared directory the metadata may name another node's newer save
  // by now: it goes only if it still names the bad file.
  const bool meta = !shared() || state_file.empty() || StateFileOnDisk(hash) == state_file;
  // If it cannot, the index has let the memory go all the same: it is not
  // restored, and checked again (and quarantined) at the next start.
  quarantine_.Keep(dir_, {meta ? MetaFileName(hash) : "", state_file}, hash, reason, new_event);
}

}  // namespace agentkv

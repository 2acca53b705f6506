#include "store/store_files.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "store/sha256.h"
#include "store/store_meta.h"

namespace agentkv {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMetaSuffix = ".meta";
constexpr const char* kStateSuffix = ".kv";
constexpr const char* kTempSuffix = ".tmp";
constexpr const char* kQuarantine = "quarantine";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsHash(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsDigits(const std::string& s) {
  return !s.empty() && s.size() < 19 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What an entry of the memory directory is, by its name alone.
enum class Kind { kForeign, kMeta, kState, kTemp };

Kind KindOf(const std::string& name) {
  std::string base = name;
  const bool temp = EndsWith(base, kTempSuffix);
  if (temp) base.resize(base.size() - std::strlen(kTempSuffix));
  if (base.size() < 65 || !IsHash(base.substr(0, 64)) || base[64] != '.') return Kind::kForeign;
  const std::string rest = base.substr(65);
  Kind kind = Kind::kForeign;
  if (rest == "meta") {
    kind = Kind::kMeta;
  } else if (EndsWith(rest, kStateSuffix) &&
             IsDigits(rest.substr(0, rest.size() - std::strlen(kStateSuffix)))) {
    kind = Kind::kState;
  }
  if (kind == Kind::kForeign) return kind;
  return temp ? Kind::kTemp : kind;
}

}  // namespace

StoreFiles::StoreFiles(FileSystem& files, fs::path dir, std::string fingerprint,
                       QuarantineBounds bounds, WallClock now)
    : files_(files),
      dir_(std::move(dir)),
      fingerprint_(std::move(fingerprint)),
      bounds_(bounds),
      now_(std::move(now)) {}

std::string StoreFiles::Hash(const AgentId& agent) { return Sha256Hex(agent.str()); }

std::string StoreFiles::StateName(const std::string& hash, long long generation) {
  return hash + "." + std::to_string(generation) + kStateSuffix;
}

std::string StoreFiles::SaveTempName(const std::string& hash, long long generation) {
  return StateName(hash, generation) + kTempSuffix;
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
  Result<Listing> listing = ListAndRemoveTemporaries();
  if (!listing.ok()) return listing.status();
  std::vector<StoredMemory> loaded;
  std::unordered_set<std::string> unloaded;  // hashes whose metadata was quarantined
  for (const std::string& meta : listing->metas) {
    if (std::optional<StoredMemory> e = LoadMeta(meta)) {
      loaded.push_back(std::move(*e));
    } else {
      unloaded.insert(meta.substr(0, 64));
    }
  }
  RemoveOrphans(listing->states, loaded, unloaded);
  PruneQuarantine();
  return loaded;
}

Result<StoreFiles::Listing> StoreFiles::ListAndRemoveTemporaries() {
  Result<std::vector<FileEntry>> entries = files_.ListFiles(dir_);
  if (!entries.ok()) {
    return Status::Error(ErrorCode::kIo, "cannot list memory directory " + dir_.string() + ": " +
                                             entries.status().message());
  }
  Listing out;
  for (const FileEntry& f : entries.value()) {
    switch (KindOf(f.name)) {
      case Kind::kTemp:  // a save or metadata write cut short
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

std::optional<StoredMemory> StoreFiles::LoadMeta(const std::string& meta_name) {
  const std::string hash = meta_name.substr(0, 64);
  std::string text;
  // An unreadable file reads as empty, which no metadata is.
  if (!files_.Read(dir_ / meta_name, [&](const char* d, std::size_t n) { text.append(d, n); })
           .ok()) {
    text.clear();
  }
  std::variant<StoredMemory, std::string> decoded = DecodeMeta(text, hash);
  std::string why;
  std::optional<StoredMemory> e;
  if (auto* failed = std::get_if<std::string>(&decoded)) {
    why = *failed;
  } else {
    e = std::move(std::get<StoredMemory>(decoded));
    if (e->state_file != StateName(hash, e->generation)) {
      why = "metadata points outside its agent";
    } else if (Result<std::uint64_t> size = files_.FileSize(dir_ / e->state_file);
               !size.ok() || static_cast<long long>(size.value()) != e->info.bytes) {
      why = "state file missing or of the wrong size";
    } else if (e->fingerprint != fingerprint_) {
      why = "saved with another model or settings";
    }
  }
  if (why.empty()) return e;
  spdlog::warn("quarantining memory {}: {}", hash.substr(0, 12), why);
  // Only a state file of this agent's own naming goes along.
  const bool own_state = e && e->state_file == StateName(hash, e->generation);
  Quarantine(hash, own_state ? e->state_file : "", why);
  return std::nullopt;
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
  if (!old_state_file.empty()) RemoveQuietly(dir_ / old_state_file);
  return Status::Ok();
}

Status StoreFiles::WriteMeta(const StoredMemory& e) {
  const std::string hash = Hash(e.info.agent);
  const fs::path temp = dir_ / (hash + kMetaSuffix + kTempSuffix);
  Status s = files_.WriteFile(temp, EncodeMeta(e));
  if (s.ok()) s = files_.SyncFile(temp);
  if (s.ok()) s = files_.Rename(temp, dir_ / (hash + kMetaSuffix));
  return s;
}

void StoreFiles::RemoveTemporaries(const std::string& hash, long long generation) {
  RemoveQuietly(dir_ / SaveTempName(hash, generation));
  RemoveQuietly(dir_ / (hash + kMetaSuffix + kTempSuffix));
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
    Result<bool> exists = files_.Exists(dir_ / e.state_file);
    if (!exists.ok() || exists.value()) {
      // Proves nothing about the file: try again next time.
      return Status::Error(ErrorCode::kIo, d.status().message());
    }
    why = "state file missing";
  } else if (static_cast<long long>(d->size) != e.info.bytes) {
    why = "state file has " + std::to_string(d->size) + " bytes, expected " +
          std::to_string(e.info.bytes);
  } else if (d->xxh64 != e.checksum) {
    why = "state file checksum mismatch";
  }
  return why.empty() ? Status::Ok() : Status::Error(ErrorCode::kNotFound, why);
}

Status StoreFiles::Copy(const std::string& state_file, const std::string& temp) {
  Status s = files_.CopyFile(dir_ / state_file, dir_ / temp);
  if (s.ok()) return s;
  return Status::Error(ErrorCode::kIo, "cannot copy memory: " + s.message());
}

void StoreFiles::Delete(const AgentId& agent, const std::string& state_file) {
  // The metadata first: without it the state file is an orphan, never restored.
  RemoveQuietly(dir_ / (Hash(agent) + kMetaSuffix));
  if (!state_file.empty()) RemoveQuietly(dir_ / state_file);
  if (Status synced = files_.SyncDir(dir_); !synced.ok()) {
    // The files are gone from this process's view; a crash now could bring
    // the metadata back, which names a checked file or fails its check.
    spdlog::warn("deleted the memory of agent {} but could not fsync the directory: {}",
                 agent.ForLog(), synced.message());
  }
}

std::optional<std::uint64_t> StoreFiles::FreeBytes() {
  Result<std::uint64_t> free = files_.FreeBytes(dir_);
  if (!free.ok()) return std::nullopt;
  return free.value();
}

void StoreFiles::Quarantine(const std::string& hash, const std::string& state_file,
                            const std::string& reason, bool new_event) {
  std::string prefix;
  {
    MutexLock lock(mu_);
    if (new_event) ++quarantined_;
    // Zero-padded: names sort oldest first.
    prefix = fmt::format("{:012d}-{:06d}.", now_(), ++quarantine_seq_ % 1000000);
  }
  const fs::path q = dir_ / kQuarantine;
  // Each step on its own: whatever moves is kept aside, whatever fails is
  // logged and the rest still tried.
  LogIfFailed(files_.CreateDirs(q));
  LogIfFailed(files_.Rename(dir_ / (hash + kMetaSuffix), q / (prefix + hash + kMetaSuffix)));
  if (!state_file.empty()) LogIfFailed(files_.Rename(dir_ / state_file, q / (prefix + state_file)));
  LogIfFailed(files_.WriteFile(q / (prefix + hash + ".reason"), reason + '\n'));
  PruneQuarantine();
}

// Names of an earlier layout sort first, as oldest.
void StoreFiles::PruneQuarantine() {
  const fs::path q = dir_ / kQuarantine;
  Result<std::vector<FileEntry>> listed = files_.ListFiles(q);
  if (!listed.ok()) {
    spdlog::warn("cannot prune the quarantine: {}", listed.status().message());
    return;
  }
  std::vector<FileEntry>& files = listed.value();
  std::sort(files.begin(), files.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
  QuarantineUsage usage;
  for (const FileEntry& f : files) usage.bytes += f.size;
  usage.files = files.size();
  for (const FileEntry& f : files) {
    if (usage.files <= bounds_.max_files && usage.bytes <= bounds_.max_bytes) break;
    Result<bool> removed = files_.Remove(q / f.name);
    if (removed.ok() && removed.value()) {
      --usage.files;
      usage.bytes -= f.size;
    }
  }
  MutexLock lock(mu_);
  quarantine_usage_ = usage;
}

int StoreFiles::quarantined() const {
  MutexLock lock(mu_);
  return quarantined_;
}

QuarantineUsage StoreFiles::quarantine_usage() const {
  MutexLock lock(mu_);
  return quarantine_usage_;
}

}  // namespace agentkv

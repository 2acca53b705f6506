#include "agentkv/store.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>
#include <type_traits>

#include "agentkv/checksum.h"
#include "agentkv/sha256.h"
#include "errno_text.h"

namespace agentkv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kMetaSuffix = ".meta";
constexpr const char* kStateSuffix = ".kv";
constexpr const char* kTempSuffix = ".tmp";
constexpr const char* kQuarantine = "quarantine";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status SyncPath(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return Status::Error(ErrorCode::kIo, "open " + path.string() + ": " + ErrnoText(errno));
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::Error(ErrorCode::kIo, "fsync " + path.string() + ": " + ErrnoText(err));
  }
  return Status::Ok();
}

Status SyncDir(const fs::path& dir) { return SyncPath(dir, O_RDONLY | O_DIRECTORY); }

// Fault injection for the crash tests: AGENTKV_TEST_CRASH_AT=<point> makes
// the process SIGKILL itself when a save reaches that point.
void CrashPoint(const char* point) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read once; nothing calls setenv
  static const char* const wanted = std::getenv("AGENTKV_TEST_CRASH_AT");
  if (wanted && std::strcmp(wanted, point) == 0) ::raise(SIGKILL);
}

std::string StateName(const std::string& hash, long long generation) {
  return hash + "." + std::to_string(generation) + kStateSuffix;
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

// A field of the metadata: absent gives `fallback`, a wrong type nullopt.
template <typename T>
std::optional<T> Field(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return std::nullopt;
  } else if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned()) return std::nullopt;
  } else {
    if (!it->is_number_integer()) return std::nullopt;
  }
  return it->get<T>();
}

}  // namespace

Store::Store(fs::path dir, std::string fingerprint, StoreOptions options, WallClock now)
    : dir_(std::move(dir)),
      fingerprint_(std::move(fingerprint)),
      options_(options),
      now_(now ? std::move(now) : WallClock([] {
        return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
      })) {}

std::int64_t Store::Now() const { return now_(); }

std::string Store::Hash(const AgentId& agent) const { return Sha256Hex(agent.str()); }

Status Store::Open() {
  std::error_code ec;
  fs::create_directories(dir_ / kQuarantine, ec);
  if (ec) {
    return Status::Error(ErrorCode::kIo,
                         "cannot create memory directory " + dir_.string() + ": " + ec.message());
  }
  std::vector<fs::path> metas, states;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    switch (KindOf(name)) {
      case Kind::kTemp: {  // a save or metadata write cut short
        std::error_code rm;
        if (!fs::remove(it->path(), rm) && rm) {
          spdlog::warn("cannot remove the leftover {}: {}", name, rm.message());
        }
        break;
      }
      case Kind::kMeta:
        metas.push_back(it->path());
        break;
      case Kind::kState:
        states.push_back(it->path());
        break;
      case Kind::kForeign:
        break;  // not ours: left alone
    }
  }
  if (ec) {
    return Status::Error(ErrorCode::kIo,
                         "cannot list memory directory " + dir_.string() + ": " + ec.message());
  }
  std::vector<std::string> referenced;
  std::unordered_set<std::string> unloaded;  // hashes whose metadata was quarantined
  long long tokens = 0;
  for (const fs::path& meta : metas) {
    std::optional<Entry> e = LoadMeta(meta);
    if (!e) {
      unloaded.insert(meta.stem().string());
      continue;
    }
    referenced.push_back(e->state_file);
    tokens += std::max(0LL, e->info.tokens);
    std::lock_guard<std::mutex> lock(mu_);
    total_bytes_ += static_cast<std::uint64_t>(e->info.bytes);
    index_.emplace(e->info.agent, std::move(*e));
  }
  if (tokens > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_per_token_ = static_cast<double>(total_bytes_) / static_cast<double>(tokens);
  }
  for (const fs::path& state : states) {  // generations no metadata points to
    const std::string name = state.filename().string();
    if (std::find(referenced.begin(), referenced.end(), name) != referenced.end()) continue;
    std::error_code gone;
    if (!fs::exists(state, gone)) continue;  // quarantined with its metadata
    if (unloaded.count(name.substr(0, 64))) {
      // Its metadata could not be read, maybe only for now: kept aside.
      QuarantineFiles(name.substr(0, 64), name, "the state of metadata that could not be loaded",
                      /*new_event=*/false);
    } else {
      std::error_code rm;
      if (!fs::remove(state, rm) && rm) {
        spdlog::warn("cannot remove the orphan {}: {}", name, rm.message());
      }
    }
  }
  PruneQuarantine();
  spdlog::info("memory directory {}: {} agents, {} bytes ({} bytes per 1K tokens)", dir_.string(),
               AgentCount(), TotalBytes(), bytes_per_1k_tokens());
  return Status::Ok();
}

std::optional<Store::Entry> Store::LoadMeta(const fs::path& meta_path) {
  const std::string hash = meta_path.stem().string();
  std::ifstream in(meta_path);
  const json j = json::parse(in, nullptr, false);
  std::optional<Entry> e;
  std::string why;
  const std::optional<std::string> agent =
      j.is_object() ? Field<std::string>(j, "agent", "") : std::nullopt;
  const std::optional<std::string> state =
      j.is_object() ? Field<std::string>(j, "state_file", "") : std::nullopt;
  Result<AgentId> id = AgentId::Parse(agent.value_or(""));
  if (!agent || !state || agent->empty() || state->empty()) {
    why = "unreadable metadata";
  } else if (!id.ok() || Sha256Hex(id->str()) != hash) {
    why = "metadata names another agent";
  } else {
    const auto tokens = Field<long long>(j, "tokens", 0);
    const auto bytes = Field<long long>(j, "bytes", 0);
    const auto created = Field<std::int64_t>(j, "created", 0);
    const auto updated = Field<std::int64_t>(j, "updated", 0);
    const auto generation = Field<long long>(j, "generation", 0);
    const auto checksum = Field<std::uint64_t>(j, "checksum", 0);
    const auto fingerprint = Field<std::string>(j, "fingerprint", "");
    const auto prompt_key = Field<std::uint64_t>(j, "prompt_key", 0);
    if (!tokens || !bytes || !created || !updated || !generation || !checksum || !fingerprint ||
        !prompt_key) {
      why = "metadata has a field of the wrong type";
    } else {
      e = Entry{MemoryInfo{id.value(), *tokens, *bytes, *created, *updated, *updated},
                *state,
                *generation,
                *checksum,
                *fingerprint,
                *prompt_key};
      std::error_code ec;
      const std::uintmax_t size = fs::file_size(dir_ / e->state_file, ec);
      if (e->state_file != StateName(hash, e->generation)) {
        why = "metadata points outside its agent";
      } else if (ec || static_cast<long long>(size) != e->info.bytes) {
        why = "state file missing or of the wrong size";
      } else if (e->fingerprint != fingerprint_) {
        why = "saved with another model or settings";
      }
    }
  }
  if (why.empty()) return e;
  spdlog::warn("quarantining memory {}: {}", hash.substr(0, 12), why);
  // Only a state file of this agent's own naming goes along.
  const bool own_state = e && e->state_file == StateName(hash, e->generation);
  QuarantineFiles(hash, own_state ? e->state_file : "", why);
  return std::nullopt;
}

std::optional<Store::Entry> Store::Lookup(const AgentId& agent) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(agent);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

bool Store::HasMemory(const AgentId& agent) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.count(agent) > 0;
}

std::optional<MemoryInfo> Store::Find(const AgentId& agent) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(agent);
  if (it == index_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<MemoryInfo> Store::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<MemoryInfo> out;
  for (const auto& [agent, e] : index_) out.push_back(e.info);
  std::sort(out.begin(), out.end(),
            [](const MemoryInfo& a, const MemoryInfo& b) { return a.agent < b.agent; });
  return out;
}

std::size_t Store::AgentCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.size();
}

std::uint64_t Store::TotalBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_bytes_;
}

int Store::quarantined() const {
  std::lock_guard<std::mutex> lock(mu_);
  return quarantined_;
}

long long Store::bytes_per_1k_tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<long long>(bytes_per_token_ * 1000);
}

QuarantineUsage Store::quarantine_usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  return quarantine_usage_;
}

void Store::Touch(const AgentId& agent) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(agent);
  if (it != index_.end()) it->second.info.last_used = Now();
}

Result<std::string> Store::BeginSave(const AgentId& agent,
                                     std::optional<long long> expected_tokens) {
  double per_token;
  long long generation = 0;
  long long saved_tokens = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    removed_.wait(lock, [&] { return !removing_.count(agent); });
    ++in_use_[agent];  // from here the budget spares it
    per_token = bytes_per_token_;
    auto it = index_.find(agent);
    if (it != index_.end()) {
      generation = it->second.generation;
      saved_tokens = it->second.info.tokens;
    }
  }
  struct statvfs fsinfo {};
  if (::statvfs(dir_.c_str(), &fsinfo) == 0) {
    const double free_bytes =
        static_cast<double>(fsinfo.f_bavail) * static_cast<double>(fsinfo.f_frsize);
    const long long tokens = std::max(0LL, expected_tokens.value_or(saved_tokens));
    const double needed =
        per_token * static_cast<double>(tokens) + static_cast<double>(options_.min_free_bytes);
    if (free_bytes < needed) {
      std::lock_guard<std::mutex> lock(mu_);
      ReleaseLocked(agent);
      return Status::Error(ErrorCode::kIo,
                           "not enough free disk space in " + dir_.string() + " to save an agent");
    }
  }
  return StateName(Hash(agent), generation + 1) + kTempSuffix;
}

void Store::AbortSave(const AgentId& agent) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseLocked(agent);
  }
  std::error_code ec;
  const std::string hash = Hash(agent);
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(hash, 0) == 0 && EndsWith(name, kTempSuffix)) fs::remove(it->path(), ec);
  }
}

Status Store::WriteMeta(const Entry& e) {
  const json j = {{"agent", e.info.agent.str()}, {"fingerprint", e.fingerprint},
                  {"state_file", e.state_file},  {"generation", e.generation},
                  {"tokens", e.info.tokens},     {"bytes", e.info.bytes},
                  {"checksum", e.checksum},      {"created", e.info.created},
                  {"updated", e.info.updated},   {"prompt_key", e.prompt_key}};
  const std::string hash = Hash(e.info.agent);
  const fs::path temp = dir_ / (hash + kMetaSuffix + kTempSuffix);
  {
    std::ofstream out(temp, std::ios::trunc);
    out << j.dump(1) << '\n';
    if (!out.flush()) return Status::Error(ErrorCode::kIo, "cannot write " + temp.string());
  }
  Status s = SyncPath(temp, O_RDONLY);
  if (!s.ok()) return s;
  CrashPoint("meta-temp-written");
  std::error_code ec;
  fs::rename(temp, dir_ / (hash + kMetaSuffix), ec);
  if (ec) return Status::Error(ErrorCode::kIo, "rename " + temp.string() + ": " + ec.message());
  return Status::Ok();
}

Status Store::CommitSave(const AgentId& agent, long long tokens, std::uint64_t prompt_key) {
  return Commit(agent, tokens, prompt_key, std::nullopt);
}

Status Store::Commit(const AgentId& agent, long long tokens, std::uint64_t prompt_key,
                     std::optional<std::uint64_t> expected) {
  const std::string hash = Hash(agent);
  std::optional<Entry> old = Lookup(agent);
  Entry e{MemoryInfo{agent, tokens, 0, Now(), Now(), Now()},
          "",
          old ? old->generation + 1 : 1,
          0,
          fingerprint_,
          prompt_key};
  if (old) e.info.created = old->info.created;
  e.state_file = StateName(hash, e.generation);
  const fs::path temp = dir_ / (e.state_file + kTempSuffix);

  Status s = SyncPath(temp, O_RDONLY);
  Result<FileDigest> digest = s.ok() ? DigestFile(temp) : Result<FileDigest>(s);
  if (digest.ok() && expected && digest->xxh64 != *expected) {
    digest = Status::Error(ErrorCode::kIo, "the copy of the memory does not match its checksum");
  }
  if (!digest.ok()) {
    AbortSave(agent);
    return digest.status();
  }
  CrashPoint("state-temp-written");
  e.info.bytes = static_cast<long long>(digest->size);
  e.checksum = digest->xxh64;
  std::error_code ec;
  fs::rename(temp, dir_ / e.state_file, ec);
  if (ec) {
    AbortSave(agent);
    return Status::Error(ErrorCode::kIo, "rename " + temp.string() + ": " + ec.message());
  }
  CrashPoint("state-renamed");
  s = WriteMeta(e);
  if (!s.ok()) {
    fs::remove(dir_ / e.state_file, ec);  // the old metadata still rules
    AbortSave(agent);
    return s;
  }
  // From here the new metadata rules: never delete what it points to.
  if (Status synced = SyncDir(dir_); !synced.ok()) {
    spdlog::warn("saved agent {} but could not fsync the directory: {}", agent.ForLog(),
                 synced.message());
  }
  CrashPoint("meta-renamed");
  if (old) fs::remove(dir_ / old->state_file, ec);
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseLocked(agent);
  auto current = index_.find(agent);
  if (current != index_.end())
    total_bytes_ -= static_cast<std::uint64_t>(current->second.info.bytes);
  total_bytes_ += digest->size;
  if (tokens > 0) {
    bytes_per_token_ = static_cast<double>(digest->size) / static_cast<double>(tokens);
  }
  index_.insert_or_assign(agent, e);
  return Status::Ok();
}

Result<RestoreFile> Store::PrepareRestore(const AgentId& agent) {
  std::optional<Entry> e = Lookup(agent);
  if (!e) return Status::Error(ErrorCode::kNotFound, "no memory for agent " + agent.str());
  std::string why;
  if (e->fingerprint != fingerprint_) {
    why = "saved with another model or settings";
  } else if (Result<FileDigest> d = DigestFile(dir_ / e->state_file); !d.ok()) {
    std::error_code ec;
    if (fs::exists(dir_ / e->state_file, ec) || ec) {
      // Proves nothing about the file: try again next time.
      return Status::Error(ErrorCode::kIo, "cannot read the memory of agent " + agent.str() +
                                               " now: " + d.status().message());
    }
    why = "state file missing";
  } else if (static_cast<long long>(d->size) != e->info.bytes) {
    why = "state file has " + std::to_string(d->size) + " bytes, expected " +
          std::to_string(e->info.bytes);
  } else if (d->xxh64 != e->checksum) {
    why = "state file checksum mismatch";
  }
  if (!why.empty()) {
    Quarantine(agent, why);
    return Status::Error(ErrorCode::kNotFound,
                         "memory of agent " + agent.str() + " failed its check (" + why + ")");
  }
  return RestoreFile{e->state_file, e->info.tokens, e->prompt_key};
}

void Store::QuarantineFiles(const std::string& hash, const std::string& state_file,
                            const std::string& reason, bool new_event) {
  std::string prefix;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (new_event) ++quarantined_;
    // Zero-padded: names sort oldest first.
    prefix = fmt::format("{:012d}-{:06d}.", Now(), ++quarantine_seq_ % 1000000);
  }
  std::error_code ec;
  const fs::path q = dir_ / kQuarantine;
  fs::create_directories(q, ec);
  fs::rename(dir_ / (hash + kMetaSuffix), q / (prefix + hash + kMetaSuffix), ec);
  if (!state_file.empty()) fs::rename(dir_ / state_file, q / (prefix + state_file), ec);
  std::ofstream(q / (prefix + hash + ".reason")) << reason << '\n';
  PruneQuarantine();
}

// Deletes the oldest files of quarantine/ past its bounds and records what
// it then holds. Names of an earlier layout sort first, as oldest.
void Store::PruneQuarantine() {
  std::vector<std::pair<std::string, std::uint64_t>> files;  // name, bytes
  std::error_code ec;
  const fs::path q = dir_ / kQuarantine;
  for (fs::directory_iterator it(q, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (!it->is_regular_file(size_ec)) continue;
    const std::uintmax_t size = it->file_size(size_ec);
    files.emplace_back(it->path().filename().string(), size_ec ? 0 : size);
  }
  std::sort(files.begin(), files.end());
  QuarantineUsage usage;
  for (const auto& f : files) usage.bytes += f.second;
  usage.files = files.size();
  for (const auto& [name, bytes] : files) {
    if (usage.files <= options_.quarantine_max_files &&
        usage.bytes <= options_.quarantine_max_bytes) {
      break;
    }
    std::error_code rm;
    if (fs::remove(q / name, rm)) {
      --usage.files;
      usage.bytes -= bytes;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  quarantine_usage_ = usage;
}

void Store::Quarantine(const AgentId& agent, const std::string& reason) {
  std::optional<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(agent);
    if (it == index_.end()) return;
    e = it->second;
    total_bytes_ -= static_cast<std::uint64_t>(e->info.bytes);
    index_.erase(it);
  }
  spdlog::warn("quarantining memory of agent {}: {}", agent.ForLog(), reason);
  QuarantineFiles(Hash(agent), e->state_file, reason);
}

void Store::DeleteFiles(const AgentId& agent, const std::string& state_file) {
  std::error_code ec;
  // The metadata first: without it the state file is an orphan, never restored.
  fs::remove(dir_ / (Hash(agent) + kMetaSuffix), ec);
  if (!state_file.empty()) fs::remove(dir_ / state_file, ec);
  if (Status synced = SyncDir(dir_); !synced.ok()) {
    // The files are gone from this process's view; a crash now could bring
    // the metadata back, which names a checked file or fails its check.
    spdlog::warn("deleted the memory of agent {} but could not fsync the directory: {}",
                 agent.ForLog(), synced.message());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    removing_.erase(agent);
  }
  removed_.notify_all();
}

bool Store::Remove(const AgentId& agent) {
  std::optional<Entry> e;
  {
    std::unique_lock<std::mutex> lock(mu_);
    removed_.wait(lock, [&] { return !removing_.count(agent); });
    auto it = index_.find(agent);
    if (it != index_.end()) {
      e = it->second;
      total_bytes_ -= static_cast<std::uint64_t>(e->info.bytes);
      index_.erase(it);
    }
    removing_.insert(agent);
  }
  AbortSave(agent);
  DeleteFiles(agent, e ? e->state_file : "");
  return e.has_value();
}

void Store::ReleaseLocked(const AgentId& agent) {
  if (auto it = in_use_.find(agent); it != in_use_.end() && --it->second <= 0) in_use_.erase(it);
}

Status Store::BudgetHoldsTwo(const Entry& parent_entry, const AgentId& parent) const {
  const std::uint64_t bytes = static_cast<std::uint64_t>(parent_entry.info.bytes);
  if (options_.budget_bytes > 0 && 2 * bytes > options_.budget_bytes) {
    return Status::Error(ErrorCode::kConflict,
                         "the disk budget (" + std::to_string(options_.budget_bytes) +
                             " bytes) cannot hold two copies of " + parent.str() + "'s memory");
  }
  return Status::Ok();
}

Status Store::CheckFork(const AgentId& parent) {
  std::optional<Entry> p = Lookup(parent);
  if (!p) return Status::Error(ErrorCode::kNotFound, "agent " + parent.str() + " has no memory");
  if (Status s = BudgetHoldsTwo(*p, parent); !s.ok()) return s;
  Result<RestoreFile> checked = PrepareRestore(parent);  // quarantines a bad parent
  return checked.ok() ? Status::Ok() : checked.status();
}

Status Store::Fork(const AgentId& parent, const AgentId& child) {
  std::optional<Entry> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(parent);
    if (it != index_.end()) {
      p = it->second;
      ++in_use_[parent];  // the budget spares it during the copy
    }
  }
  if (!p) return Status::Error(ErrorCode::kNotFound, "agent " + parent.str() + " has no memory");
  struct Release {
    Store* store;
    const AgentId& agent;
    ~Release() {
      std::lock_guard<std::mutex> lock(store->mu_);
      store->ReleaseLocked(agent);
    }
  } release{this, parent};
  // The parent's file is not read twice: the copy must match its checksum.
  if (Status s = BudgetHoldsTwo(*p, parent); !s.ok()) return s;
  Remove(child);
  Result<std::string> temp = BeginSave(child, p->info.tokens);
  if (!temp.ok()) return temp.status();
  std::error_code ec;
  fs::copy_file(dir_ / p->state_file, dir_ / temp.value(), fs::copy_options::overwrite_existing,
                ec);
  if (ec) {
    AbortSave(child);
    return Status::Error(ErrorCode::kIo, "cannot copy memory: " + ec.message());
  }
  Status s = Commit(child, p->info.tokens, p->prompt_key, p->checksum);
  if (!s.ok()) return s;
  for (const AgentId& gone : EnforceBudget({parent, child})) {
    spdlog::info("agent {} lost its saved memory to the disk budget", gone.ForLog());
  }
  return Status::Ok();
}

std::vector<AgentId> Store::EnforceBudget(const std::vector<AgentId>& keep) {
  std::vector<std::pair<AgentId, std::string>> victims;  // agent, state file
  if (options_.budget_bytes == 0) return {};
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<const Entry*> order;
    for (const auto& [agent, e] : index_) {
      if (!in_use_.count(agent)) order.push_back(&e);  // a save in flight is spared
    }
    // Least recently used first; the agents to keep last.
    auto kept = [&](const Entry* e) {
      return std::find(keep.begin(), keep.end(), e->info.agent) != keep.end();
    };
    std::sort(order.begin(), order.end(), [&](const Entry* a, const Entry* b) {
      if (kept(a) != kept(b)) return !kept(a);
      return a->info.last_used < b->info.last_used;
    });
    for (const Entry* e : order) {
      if (total_bytes_ <= options_.budget_bytes) break;
      total_bytes_ -= static_cast<std::uint64_t>(e->info.bytes);
      victims.emplace_back(e->info.agent, e->state_file);
    }
    // Out of the index under the lock: no other enforcement picks them, and
    // a save of one waits in BeginSave until its files are gone.
    for (const auto& v : victims) {
      removing_.insert(v.first);
      index_.erase(v.first);
    }
  }
  std::vector<AgentId> gone;
  for (const auto& [agent, state_file] : victims) {
    spdlog::info("disk budget: deleting the memory of agent {}", agent.ForLog());
    DeleteFiles(agent, state_file);
    gone.push_back(agent);
  }
  return gone;
}

}  // namespace agentkv

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
    if (EndsWith(name, kTempSuffix)) {
      fs::remove(it->path(), ec);  // a save or metadata write cut short
    } else if (EndsWith(name, kMetaSuffix)) {
      metas.push_back(it->path());
    } else if (EndsWith(name, kStateSuffix)) {
      states.push_back(it->path());
    }
  }
  if (ec) {
    return Status::Error(ErrorCode::kIo,
                         "cannot list memory directory " + dir_.string() + ": " + ec.message());
  }
  std::vector<std::string> referenced;
  for (const fs::path& meta : metas) {
    std::optional<Entry> e = LoadMeta(meta);
    if (!e) continue;
    referenced.push_back(e->state_file);
    std::lock_guard<std::mutex> lock(mu_);
    total_bytes_ += static_cast<std::uint64_t>(e->info.bytes);
    index_.emplace(e->info.agent, std::move(*e));
  }
  for (const fs::path& state : states) {  // generations no metadata points to
    const std::string name = state.filename().string();
    if (std::find(referenced.begin(), referenced.end(), name) == referenced.end()) {
      fs::remove(state, ec);
    }
  }
  spdlog::info("memory directory {}: {} agents, {} bytes", dir_.string(), AgentCount(),
               TotalBytes());
  return Status::Ok();
}

std::optional<Store::Entry> Store::LoadMeta(const fs::path& meta_path) {
  const std::string hash = meta_path.stem().string();
  std::ifstream in(meta_path);
  const json j = json::parse(in, nullptr, false);
  std::optional<Entry> e;
  std::string why;
  if (!j.is_object() || !j.contains("agent") || !j["agent"].is_string() ||
      !j.contains("state_file") || !j["state_file"].is_string()) {
    why = "unreadable metadata";
  } else if (Result<AgentId> id = AgentId::Parse(j["agent"].get<std::string>());
             !id.ok() || Sha256Hex(id->str()) != hash) {
    why = "metadata names another agent";
  } else {
    e = Entry{MemoryInfo{id.value(), j.value("tokens", 0LL), j.value("bytes", 0LL),
                         j.value("created", std::int64_t{0}), j.value("updated", std::int64_t{0}),
                         j.value("updated", std::int64_t{0})},
              j["state_file"].get<std::string>(), j.value("generation", 0LL),
              j.value("checksum", std::uint64_t{0}), j.value("fingerprint", "")};
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
  if (why.empty()) return e;
  spdlog::warn("quarantining memory {}: {}", hash.substr(0, 12), why);
  QuarantineFiles(hash, e ? e->state_file : "", why);
  return std::nullopt;
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

void Store::Touch(const AgentId& agent) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(agent);
  if (it != index_.end()) it->second.info.last_used = Now();
}

Result<std::string> Store::BeginSave(const AgentId& agent, long long expected_tokens) {
  double per_token;
  long long generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    per_token = bytes_per_token_;
    auto it = index_.find(agent);
    if (it != index_.end()) generation = it->second.generation;
  }
  struct statvfs fsinfo {};
  if (::statvfs(dir_.c_str(), &fsinfo) == 0) {
    const double free_bytes =
        static_cast<double>(fsinfo.f_bavail) * static_cast<double>(fsinfo.f_frsize);
    const double needed = per_token * static_cast<double>(expected_tokens) +
                          static_cast<double>(options_.min_free_bytes);
    if (free_bytes < needed) {
      return Status::Error(ErrorCode::kIo,
                           "not enough free disk space in " + dir_.string() + " to save an agent");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  saving_.insert(agent);
  return StateName(Hash(agent), generation + 1) + kTempSuffix;
}

void Store::AbortSave(const AgentId& agent) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    saving_.erase(agent);
  }
  std::error_code ec;
  const std::string hash = Hash(agent);
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(hash, 0) == 0 && EndsWith(name, kTempSuffix)) fs::remove(it->path(), ec);
  }
}

Status Store::WriteMeta(const Entry& e) {
  const json j = {
      {"agent", e.info.agent.str()}, {"fingerprint", e.fingerprint}, {"state_file", e.state_file},
      {"generation", e.generation},  {"tokens", e.info.tokens},      {"bytes", e.info.bytes},
      {"checksum", e.checksum},      {"created", e.info.created},    {"updated", e.info.updated}};
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

Status Store::CommitSave(const AgentId& agent, long long tokens) {
  const std::string hash = Hash(agent);
  std::optional<Entry> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(agent);
    if (it != index_.end()) old = it->second;
  }
  Entry e{MemoryInfo{agent, tokens, 0, Now(), Now(), Now()}, "", old ? old->generation + 1 : 1, 0,
          fingerprint_};
  if (old) e.info.created = old->info.created;
  e.state_file = StateName(hash, e.generation);
  const fs::path temp = dir_ / (e.state_file + kTempSuffix);

  Status s = SyncPath(temp, O_RDONLY);
  Result<FileDigest> digest = s.ok() ? DigestFile(temp) : Result<FileDigest>(s);
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
  saving_.erase(agent);
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

Result<std::string> Store::PrepareRestore(const AgentId& agent) {
  std::optional<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(agent);
    if (it != index_.end()) e = it->second;
  }
  if (!e) return Status::Error(ErrorCode::kNotFound, "no memory for agent " + agent.str());
  std::string why;
  if (e->fingerprint != fingerprint_) {
    why = "saved with another model or settings";
  } else if (Result<FileDigest> d = DigestFile(dir_ / e->state_file); !d.ok()) {
    why = "state file unreadable";
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
  return e->state_file;
}

void Store::QuarantineFiles(const std::string& hash, const std::string& state_file,
                            const std::string& reason) {
  std::error_code ec;
  const std::string stamp = std::to_string(Now());
  const fs::path q = dir_ / kQuarantine;
  fs::create_directories(q, ec);
  fs::rename(dir_ / (hash + kMetaSuffix), q / (hash + kMetaSuffix + "." + stamp), ec);
  if (!state_file.empty()) fs::rename(dir_ / state_file, q / (state_file + "." + stamp), ec);
  std::ofstream(q / (hash + ".reason." + stamp)) << reason << '\n';
  std::lock_guard<std::mutex> lock(mu_);
  ++quarantined_;
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

bool Store::Remove(const AgentId& agent) {
  std::optional<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(agent);
    if (it != index_.end()) {
      e = it->second;
      total_bytes_ -= static_cast<std::uint64_t>(e->info.bytes);
      index_.erase(it);
    }
  }
  AbortSave(agent);
  std::error_code ec;
  const std::string hash = Hash(agent);
  fs::remove(dir_ / (hash + kMetaSuffix), ec);
  if (e) fs::remove(dir_ / e->state_file, ec);
  SyncDir(dir_);
  return e.has_value();
}

Status Store::Fork(const AgentId& parent, const AgentId& child) {
  std::optional<Entry> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(parent);
    if (it != index_.end()) p = it->second;
  }
  if (!p) return Status::Error(ErrorCode::kNotFound, "agent " + parent.str() + " has no memory");
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
  return CommitSave(child, p->info.tokens);
}

std::vector<AgentId> Store::EnforceBudget(const std::vector<AgentId>& keep) {
  std::vector<AgentId> victims;
  if (options_.budget_bytes == 0) return victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<const Entry*> order;
    for (const auto& [agent, e] : index_) {
      if (!saving_.count(agent)) order.push_back(&e);  // a save in flight is spared
    }
    // Least recently used first; the agents to keep last.
    auto kept = [&](const Entry* e) {
      return std::find(keep.begin(), keep.end(), e->info.agent) != keep.end();
    };
    std::sort(order.begin(), order.end(), [&](const Entry* a, const Entry* b) {
      if (kept(a) != kept(b)) return !kept(a);
      return a->info.last_used < b->info.last_used;
    });
    std::uint64_t total = total_bytes_;
    for (const Entry* e : order) {
      if (total <= options_.budget_bytes) break;
      total -= static_cast<std::uint64_t>(e->info.bytes);
      victims.push_back(e->info.agent);
    }
  }
  for (const AgentId& agent : victims) {
    spdlog::info("disk budget: deleting the memory of agent {}", agent.ForLog());
    Remove(agent);
  }
  return victims;
}

}  // namespace agentkv

#include "agentkv/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "agentkv/sha256.h"

namespace agentkv {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSuffix = ".slot";
constexpr const char* kTempSuffix = ".slot.tmp";

Status SyncPath(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return Status::Error(ErrorCode::kIo, "open " + path.string() + ": " + std::strerror(errno));
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::Error(ErrorCode::kIo, "fsync " + path.string() + ": " + std::strerror(err));
  }
  return Status::Ok();
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Store::Store(fs::path dir) : dir_(std::move(dir)) {}

Status Store::Open() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    return Status::Error(ErrorCode::kIo, "cannot create memory directory " +
                                             dir_.string() + ": " + ec.message());
  }
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (EndsWith(it->path().filename().string(), kTempSuffix)) fs::remove(it->path(), ec);
  }
  if (ec) {
    return Status::Error(ErrorCode::kIo, "cannot list memory directory " +
                                             dir_.string() + ": " + ec.message());
  }
  return Status::Ok();
}

std::string Store::FileName(const AgentId& agent) {
  return Sha256Hex(agent.str()) + kSuffix;
}

std::string Store::TempFileName(const AgentId& agent) {
  return Sha256Hex(agent.str()) + kTempSuffix;
}

Status Store::CommitSave(const AgentId& agent) {
  const fs::path temp = dir_ / TempFileName(agent);
  Status s = SyncPath(temp, O_RDONLY);
  if (s.ok()) {
    std::error_code ec;
    fs::rename(temp, dir_ / FileName(agent), ec);
    if (ec) s = Status::Error(ErrorCode::kIo, "rename " + temp.string() + ": " + ec.message());
  }
  if (s.ok()) s = SyncPath(dir_, O_RDONLY | O_DIRECTORY);
  if (!s.ok()) {
    std::error_code ignored;
    fs::remove(temp, ignored);
  }
  return s;
}

void Store::Remove(const AgentId& agent) {
  std::error_code ignored;
  fs::remove(dir_ / FileName(agent), ignored);
  fs::remove(dir_ / TempFileName(agent), ignored);
}

}  // namespace agentkv

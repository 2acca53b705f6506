#include "store/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "agentkv/errno_text.h"

namespace agentkv {

namespace fs = std::filesystem;

namespace {

constexpr char kLockName[] = "LOCK";

// The pid the holder wrote, for the message ("unknown" if unreadable).
std::string HolderOf(const fs::path& file) {
  std::ifstream in(file);
  std::string pid;
  in >> pid;
  return pid.empty() ? "unknown" : pid;
}

// Opens `file` (0600, close-on-exec: llama-server must not inherit it) and
// tries to lock it; returns the fd, -1 with errno EWOULDBLOCK if another
// owner holds it, or -1 with another errno on failure.
int TryLock(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// True if another owner holds `file` now (tried without keeping it).
bool HeldElsewhere(const fs::path& file) {
  const int fd = TryLock(file);
  if (fd >= 0) {
    ::close(fd);  // closing drops the trial lock
    return false;
  }
  return errno == EWOULDBLOCK;
}

Status Conflict(const fs::path& dir, const fs::path& held, const std::string& what) {
  return Status::Error(ErrorCode::kConflict, "memory directory " + dir.string() +
                                                 " is in use: " + held.filename().string() +
                                                 " is held by agentkv pid " + HolderOf(held) +
                                                 "; " + what);
}

}  // namespace

Result<std::unique_ptr<DirLock>> DirLock::Acquire(const fs::path& dir, const std::string& node) {
  const fs::path own = dir / (node.empty() ? std::string(kLockName) : kLockName + ("." + node));
  const int fd = TryLock(own);
  if (fd < 0) {
    if (errno != EWOULDBLOCK) {
      return Status::Error(ErrorCode::kIo, "cannot lock " + own.string() + ": " + ErrnoText(errno));
    }
    return Conflict(dir, own,
                    node.empty() ? "two daemons on one directory overwrite each other's agents: "
                                   "give each its own --memory-dir"
                                 : "another node runs with --node-id " + node);
  }
  std::unique_ptr<DirLock> lock(new DirLock(fd));
  // The other kind of owner: nodes of a shared directory, or one alone.
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool node_lock = name.rfind(std::string(kLockName) + ".", 0) == 0;
    const bool other_kind = node.empty() ? node_lock : name == kLockName;
    if (other_kind && HeldElsewhere(it->path())) {
      return Conflict(dir, it->path(),
                      node.empty() ? "the directory is shared by agentkv nodes: give this one "
                                     "--node-id too"
                                   : "an agentkv without --node-id owns the whole directory");
    }
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    return Status::Error(ErrorCode::kIo, "cannot write " + own.string() + ": " + ErrnoText(errno));
  }
  return lock;
}

DirLock::~DirLock() { ::close(fd_); }

}  // namespace agentkv

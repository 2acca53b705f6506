#pragma once
// One owner per memory directory: an exclusive flock(2) on a LOCK file in
// it, held for the owner's life, as LevelDB does. Without a node name the
// file is LOCK and its owner must be alone in the directory; a node of a
// shared directory (--node-id) holds LOCK.<node>, so each node's lock is
// its own and two nodes with one name cannot run.
//
// flock is advisory and per open file description: a second owner in the
// same process is refused too. On NFS, Linux emulates flock with the
// server's byte-range locks (NFSv4, or NLM for v3 with the lock daemon
// running); on a mount with `nolock` or `local_lock=flock` another client
// does not see the lock. Not thread-safe: one thread acquires, the
// destructor releases.

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>

#include "agentkv/status.h"

namespace agentkv {

class DirLock {
 public:
  // Takes the lock of `node` ("" outside a shared directory) in `dir`,
  // which must exist, and writes this process's pid into the lock file.
  // Returns kConflict, naming the holder's pid, if another owner holds it;
  // without a node, also if a node of a shared directory holds its LOCK.*
  // (then this one needs --node-id), and with a node, if an owner without a
  // node holds LOCK. kIo if the file cannot be opened or locked.
  static Result<std::unique_ptr<DirLock>> Acquire(const std::filesystem::path& dir,
                                                  const std::string& node);
  ~DirLock();  // releases the lock (the file stays)
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace agentkv

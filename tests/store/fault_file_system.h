#pragma once
// The real file system with faults on demand, for the store's tests (after
// LevelDB's FaultInjectionTestEnv): an operation on a path fails with a
// chosen errno (EIO on a read, ENOSPC on a write, a failed fsync), or the
// process "crashes" there: that operation and every later one fail without
// touching the disk, as if the process had died at that instant. A test
// then opens a new Store on the same directory and checks what it recovers.
// Unsynced data is not dropped: a crash here is the process's, not the
// machine's.
//
// Faults match an operation and the end of its path (for Rename and
// CopyFile, the source): ".meta.tmp" matches every metadata temporary,
// ".kv" every state file but no temporary. Thread-safe.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agentkv/file_system.h"

namespace agentkv::testing {

class FaultFileSystem final : public FileSystem {
 public:
  enum class Op {
    kCreateDirs,
    kListFiles,
    kFileSize,
    kStamp,
    kExists,
    kRead,
    kWriteFile,
    kSyncFile,
    kSyncDir,
    kRename,
    kRemove,
    kCopyFile,
    kFreeBytes,
  };

  // The next `times` calls of `op` on a path ending in `suffix` fail with
  // `error` (an errno) and do nothing.
  void FailOn(Op op, const std::string& suffix, int error, int times = 1);
  // From the `nth` call of `op` on a path ending in `suffix` on, before it
  // runs, every call fails: the process died there.
  void CrashAt(Op op, const std::string& suffix, int nth = 1);
  bool crashed() const;
  // What FreeBytes reports from now on (nullopt: the real figure).
  void SetFreeBytes(std::optional<std::uint64_t> bytes);

  Status CreateDirs(const Path& dir) override;
  Result<std::vector<FileEntry>> ListFiles(const Path& dir, bool sizes) override;
  Result<std::uint64_t> FileSize(const Path& file) override;
  Result<FileStamp> Stamp(const Path& file) override;
  Result<bool> Exists(const Path& path) override;
  Result<Kind> KindOf(const Path& path) override;
  Status Read(const Path& file, const ChunkSink& sink) override;
  Status WriteFile(const Path& file, const std::string& data) override;
  Status SyncFile(const Path& file) override;
  Status SyncDir(const Path& dir) override;
  Status Rename(const Path& from, const Path& to) override;
  Result<bool> Remove(const Path& file) override;
  Status CopyFile(const Path& from, const Path& to) override;
  Result<std::uint64_t> FreeBytes(const Path& dir) override;

 private:
  struct Fault {
    Op op;
    std::string suffix;
    int error = 0;      // errno; 0 for a crash
    int countdown = 0;  // failures left, or calls before the crash
  };
  // The error this call must fail with, if any; counts it against faults.
  Status Check(Op op, const Path& path);
  // The real `call`, unless a fault makes this one fail.
  template <typename Call>
  auto Pass(Op op, const Path& path, Call call) -> decltype(call()) {
    if (Status s = Check(op, path); !s.ok()) return s;
    return call();
  }

  FileSystem& real_ = RealFileSystem();
  mutable std::mutex mu_;
  std::vector<Fault> faults_;                // guarded by mu_
  bool crashed_ = false;                     // guarded by mu_
  std::optional<std::uint64_t> free_bytes_;  // guarded by mu_
};

}  // namespace agentkv::testing

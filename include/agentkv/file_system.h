#pragma once
// The file operations the memory store does, and nothing more: the seam
// where tests inject I/O errors (EIO, ENOSPC, a failed fsync) and crashes
// (tests/store/fault_file_system.h). RealFileSystem() is the POSIX one.
//
// Every call returns kIo on failure, with the operation, the path and the
// system's reason in the message. None throws. None follows a symbolic link
// in a path's last part (a file that is a link is not one of agentkv's: it
// is not listed, and reading, writing or copying it fails), so nothing in
// the memory directory leads agentkv to a file elsewhere. Implementations are
// thread-safe and block on I/O: call them without holding a lock.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "agentkv/status.h"

namespace agentkv {

// A regular file in a directory listing.
struct FileEntry {
  std::string name;        // without the directory
  std::uint64_t size = 0;  // 0 if it could not be read
};

// What tells that a file's bytes are the ones seen before without reading
// them: writing to a file changes its size or modification time, replacing
// it changes the inode, and either changes its status-change time.
struct FileStamp {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const FileStamp& o) const {
    return device == o.device && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns &&
           ctime_ns == o.ctime_ns;
  }
  bool operator!=(const FileStamp& o) const { return !(*this == o); }
};

class FileSystem {
 public:
  using Path = std::filesystem::path;
  // Receives a file's bytes, one chunk at a time, in order.
  using ChunkSink = std::function<void(const char* data, std::size_t size)>;

  virtual ~FileSystem() = default;

  // Creates `dir` and its parents; Ok if it exists already.
  virtual Status CreateDirs(const Path& dir) = 0;
  // The regular files of `dir` (directories, links and the like are skipped),
  // with their sizes if `sizes` (else 0: a directory of a million files is
  // listed without a stat of each).
  virtual Result<std::vector<FileEntry>> ListFiles(const Path& dir, bool sizes) = 0;
  // kIo also when the file is missing.
  virtual Result<std::uint64_t> FileSize(const Path& file) = 0;
  // kIo also when the file is missing.
  virtual Result<FileStamp> Stamp(const Path& file) = 0;
  // False if nothing has that name; kIo if that cannot be told.
  virtual Result<bool> Exists(const Path& path) = 0;
  // What `path` itself is (a symbolic link is kOther, whatever it points to).
  enum class Kind { kNone, kFile, kDirectory, kOther };
  virtual Result<Kind> KindOf(const Path& path) = 0;
  // Feeds the whole file to `sink`. A read error after some chunks were fed
  // returns kIo: what was fed is then not the file.
  virtual Status Read(const Path& file, const ChunkSink& sink) = 0;
  // Creates or truncates `file` and writes `data`, without an fsync.
  virtual Status WriteFile(const Path& file, const std::string& data) = 0;
  // fsync of a file, and of a directory (which makes renames and removals
  // in it durable).
  virtual Status SyncFile(const Path& file) = 0;
  virtual Status SyncDir(const Path& dir) = 0;
  // Atomically replaces `to` with `from`.
  virtual Status Rename(const Path& from, const Path& to) = 0;
  // Returns true if it removed a file, false if there was none.
  virtual Result<bool> Remove(const Path& file) = 0;
  // Copies `from` over `to`, without an fsync.
  virtual Status CopyFile(const Path& from, const Path& to) = 0;
  // Bytes an unprivileged process may still write in the file system of `dir`.
  virtual Result<std::uint64_t> FreeBytes(const Path& dir) = 0;
  // Tells the kernel a file's pages will be read soon (it reads them into
  // the page cache in the background) or not (it may drop them). Advice
  // only: nothing is reported, and a file system may ignore it.
  enum class Advice { kWillNeed, kDontNeed };
  virtual void Advise(const Path& file, Advice advice) {
    (void)file;
    (void)advice;
  }
};

// The process's real file system. Lives as long as the process.
FileSystem& RealFileSystem();

}  // namespace agentkv

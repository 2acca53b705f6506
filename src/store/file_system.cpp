#include "agentkv/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <system_error>
#include <utility>

#include "agentkv/errno_text.h"

namespace agentkv {

namespace fs = std::filesystem;

namespace {

Status IoError(const char* op, const fs::path& path, const std::string& why) {
  return Status::Error(ErrorCode::kIo, std::string(op) + " " + path.string() + ": " + why);
}

Status IoError(const char* op, const fs::path& path, const std::error_code& ec) {
  return IoError(op, path, ec.message());
}

// Runs `call`, which reports through an error_code, as a Result: kIo naming
// `op` and `path` if it failed.
template <typename Call>
auto Checked(const char* op, const fs::path& path, Call call)
    -> Result<decltype(call(std::declval<std::error_code&>()))> {
  std::error_code ec;
  auto value = call(ec);
  if (ec) return IoError(op, path, ec);
  return value;
}

Status SyncPath(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return IoError("open", path, ErrnoText(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return IoError("fsync", path, ErrnoText(err));
  return Status::Ok();
}

// Created or truncated, 0600 whatever the umask (the files hold
// conversations), never through a link. -1 and errno on failure.
int OpenForWriting(const fs::path& file) {
  return ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
}

Status WriteFully(int fd, const fs::path& file, const char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError("write", file, ErrnoText(errno));
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

// The status of `path` itself (a link's own); nothing by that name is no
// error.
fs::file_status OwnStatus(const fs::path& path, std::error_code& ec) {
  const fs::file_status st = fs::symlink_status(path, ec);
  if (st.type() == fs::file_type::not_found) ec.clear();
  return st;
}

class PosixFileSystem final : public FileSystem {
 public:
  // Directories agentkv creates are its own alone (0700), whatever the
  // umask: the files in them hold conversations.
  Status CreateDirs(const Path& dir) override {
    return Checked("create", dir,
                   [&](std::error_code& ec) {
                     const bool created = fs::create_directories(dir, ec);
                     if (created && !ec) fs::permissions(dir, fs::perms::owner_all, ec);
                     return created;
                   })
        .status();
  }

  Result<std::vector<FileEntry>> ListFiles(const Path& dir, bool sizes) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return IoError("list", dir, ErrnoText(errno));
    std::vector<FileEntry> files;
    errno = 0;
    for (const dirent* e; (e = ::readdir(d)) != nullptr; errno = 0) {
      // The entry's type, from the directory itself where the file system
      // gives it; a stat of the entry (not what it links to) where not.
      unsigned char type = e->d_type;
      struct stat st {};
      const bool stat_needed = sizes || type == DT_UNKNOWN;
      if (stat_needed && ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        continue;  // gone since the listing began
      }
      if (type == DT_UNKNOWN) type = S_ISREG(st.st_mode) ? DT_REG : DT_DIR;
      if (type != DT_REG) continue;
      files.push_back({e->d_name, sizes ? static_cast<std::uint64_t>(st.st_size) : 0});
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) return IoError("list", dir, ErrnoText(err));
    return files;
  }

  Result<std::uint64_t> FileSize(const Path& file) override {
    Result<FileStamp> stamp = Stamp(file);
    if (!stamp.ok()) return stamp.status();
    return stamp->size;
  }

  // A link's own size and times: a link is no file of agentkv's.
  Result<FileStamp> Stamp(const Path& file) override {
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) return IoError("stat", file, ErrnoText(errno));
    FileStamp stamp;
    stamp.device = static_cast<std::uint64_t>(st.st_dev);
    stamp.inode = static_cast<std::uint64_t>(st.st_ino);
    stamp.size = static_cast<std::uint64_t>(st.st_size);
    stamp.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    stamp.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    return stamp;
  }

  Result<bool> Exists(const Path& path) override {
    return Checked("stat", path,
                   [&](std::error_code& ec) { return fs::exists(OwnStatus(path, ec)); });
  }

  Result<Kind> KindOf(const Path& path) override {
    return Checked("stat", path, [&](std::error_code& ec) {
      const fs::file_status st = OwnStatus(path, ec);
      if (!fs::exists(st)) return Kind::kNone;
      if (fs::is_regular_file(st)) return Kind::kFile;
      return fs::is_directory(st) ? Kind::kDirectory : Kind::kOther;
    });
  }

  // In 1 MiB reads: memory files run to hundreds of MB, and a byte-at-a-time
  // read made the check before each restore cost more than the restore itself.
  Status Read(const Path& file, const ChunkSink& sink) override {
    const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return IoError("open", file, ErrnoText(errno));
    // A chunk of at most 1 MiB, no larger than the file (a metadata file is
    // a few hundred bytes, and start-up reads one per agent), left
    // uninitialised: read fills it.
    constexpr std::size_t kMaxChunk = std::size_t{1} << 20;
    struct stat info {};
    const std::size_t size = ::fstat(fd, &info) == 0 && info.st_size >= 0
                                 ? static_cast<std::size_t>(info.st_size)
                                 : kMaxChunk;
    const std::size_t chunk_size = std::clamp<std::size_t>(size + 1, 4096, kMaxChunk);
    const std::unique_ptr<char[]> chunk(new char[chunk_size]);
    for (;;) {
      const ssize_t n = ::read(fd, chunk.get(), chunk_size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        return IoError("read", file, ErrnoText(err));
      }
      if (n == 0) break;
      sink(chunk.get(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    return Status::Ok();
  }

  // 0600 whatever the umask, as every file agentkv writes.
  Status WriteFile(const Path& file, const std::string& data) override {
    const int fd = OpenForWriting(file);
    if (fd < 0) return IoError("open", file, ErrnoText(errno));
    Status written = WriteFully(fd, file, data.data(), data.size());
    if (::close(fd) != 0 && written.ok()) written = IoError("close", file, ErrnoText(errno));
    return written;
  }

  Status SyncFile(const Path& file) override { return SyncPath(file, O_RDONLY); }
  Status SyncDir(const Path& dir) override { return SyncPath(dir, O_RDONLY | O_DIRECTORY); }

  void Advise(const Path& file, Advice advice) override {
    int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    ::posix_fadvise(fd, 0, 0,
                    advice == Advice::kWillNeed ? POSIX_FADV_WILLNEED : POSIX_FADV_DONTNEED);
    ::close(fd);
  }

  Status Rename(const Path& from, const Path& to) override {
    return Checked("rename", from,
                   [&](std::error_code& ec) {
                     fs::rename(from, to, ec);
                     return true;
                   })
        .status();
  }

  Result<bool> Remove(const Path& file) override {
    return Checked("remove", file, [&](std::error_code& ec) { return fs::remove(file, ec); });
  }

  Status CopyFile(const Path& from, const Path& to) override {
    const int out = OpenForWriting(to);
    if (out < 0) return IoError("open", to, ErrnoText(errno));
    Status written = Status::Ok();
    Status read = Read(from, [&](const char* data, std::size_t size) {
      if (written.ok()) written = WriteFully(out, to, data, size);
    });
    if (::close(out) != 0 && written.ok()) written = IoError("close", to, ErrnoText(errno));
    return read.ok() ? written : read;
  }

  Result<std::uint64_t> FreeBytes(const Path& dir) override {
    struct statvfs info {};
    if (::statvfs(dir.c_str(), &info) != 0) return IoError("statvfs", dir, ErrnoText(errno));
    return static_cast<std::uint64_t>(info.f_bavail) * static_cast<std::uint64_t>(info.f_frsize);
  }
};

}  // namespace

FileSystem& RealFileSystem() {
  static PosixFileSystem real;  // stateless: safe to use until exit
  return real;
}

}  // namespace agentkv

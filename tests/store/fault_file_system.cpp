#include "store/fault_file_system.h"

#include "agentkv/errno_text.h"

namespace agentkv::testing {

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void FaultFileSystem::FailOn(Op op, const std::string& suffix, int error, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back({op, suffix, error, times});
}

void FaultFileSystem::CrashAt(Op op, const std::string& suffix, int nth) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back({op, suffix, 0, nth});
}

bool FaultFileSystem::crashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crashed_;
}

void FaultFileSystem::SetFreeBytes(std::optional<std::uint64_t> bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  free_bytes_ = bytes;
}

Status FaultFileSystem::Check(Op op, const Path& path) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Fault& f : faults_) {
    if (crashed_ || f.op != op || f.countdown <= 0 || !EndsWith(path.string(), f.suffix)) continue;
    if (f.error != 0) {
      --f.countdown;
      return Status::Error(ErrorCode::kIo,
                           "injected: " + path.string() + ": " + ErrnoText(f.error));
    }
    if (--f.countdown == 0) crashed_ = true;
  }
  if (crashed_) return Status::Error(ErrorCode::kIo, "the process has crashed");
  return Status::Ok();
}

Status FaultFileSystem::CreateDirs(const Path& dir) {
  return Pass(Op::kCreateDirs, dir, [&] { return real_.CreateDirs(dir); });
}

Result<std::vector<FileEntry>> FaultFileSystem::ListFiles(const Path& dir, bool sizes) {
  return Pass(Op::kListFiles, dir, [&] { return real_.ListFiles(dir, sizes); });
}

Result<std::uint64_t> FaultFileSystem::FileSize(const Path& file) {
  return Pass(Op::kFileSize, file, [&] { return real_.FileSize(file); });
}

Result<FileStamp> FaultFileSystem::Stamp(const Path& file) {
  return Pass(Op::kStamp, file, [&] { return real_.Stamp(file); });
}

Result<bool> FaultFileSystem::Exists(const Path& path) {
  return Pass(Op::kExists, path, [&] { return real_.Exists(path); });
}

Result<FileSystem::Kind> FaultFileSystem::KindOf(const Path& path) {
  return Pass(Op::kExists, path, [&] { return real_.KindOf(path); });
}

Status FaultFileSystem::Read(const Path& file, const ChunkSink& sink) {
  return Pass(Op::kRead, file, [&] { return real_.Read(file, sink); });
}

Status FaultFileSystem::WriteFile(const Path& file, const std::string& data) {
  return Pass(Op::kWriteFile, file, [&] { return real_.WriteFile(file, data); });
}

Status FaultFileSystem::SyncFile(const Path& file) {
  return Pass(Op::kSyncFile, file, [&] { return real_.SyncFile(file); });
}

Status FaultFileSystem::SyncDir(const Path& dir) {
  return Pass(Op::kSyncDir, dir, [&] { return real_.SyncDir(dir); });
}

Status FaultFileSystem::Rename(const Path& from, const Path& to) {
  return Pass(Op::kRename, from, [&] { return real_.Rename(from, to); });
}

Result<bool> FaultFileSystem::Remove(const Path& file) {
  return Pass(Op::kRemove, file, [&] { return real_.Remove(file); });
}

Status FaultFileSystem::CopyFile(const Path& from, const Path& to) {
  return Pass(Op::kCopyFile, from, [&] { return real_.CopyFile(from, to); });
}

Result<std::uint64_t> FaultFileSystem::FreeBytes(const Path& dir) {
  if (Status s = Check(Op::kFreeBytes, dir); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_bytes_) return *free_bytes_;
  }
  return real_.FreeBytes(dir);
}

}  // namespace agentkv::testing

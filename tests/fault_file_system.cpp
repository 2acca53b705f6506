#include "fault_file_system.h"

#include "errno_text.h"

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
  Status s = Check(Op::kCreateDirs, dir);
  return s.ok() ? real_.CreateDirs(dir) : s;
}

Result<std::vector<FileEntry>> FaultFileSystem::ListFiles(const Path& dir) {
  if (Status s = Check(Op::kListFiles, dir); !s.ok()) return s;
  return real_.ListFiles(dir);
}

Result<std::uint64_t> FaultFileSystem::FileSize(const Path& file) {
  if (Status s = Check(Op::kFileSize, file); !s.ok()) return s;
  return real_.FileSize(file);
}

Result<bool> FaultFileSystem::Exists(const Path& path) {
  if (Status s = Check(Op::kExists, path); !s.ok()) return s;
  return real_.Exists(path);
}

Status FaultFileSystem::Read(const Path& file, const ChunkSink& sink) {
  Status s = Check(Op::kRead, file);
  return s.ok() ? real_.Read(file, sink) : s;
}

Status FaultFileSystem::WriteFile(const Path& file, const std::string& data) {
  Status s = Check(Op::kWriteFile, file);
  return s.ok() ? real_.WriteFile(file, data) : s;
}

Status FaultFileSystem::SyncFile(const Path& file) {
  Status s = Check(Op::kSyncFile, file);
  return s.ok() ? real_.SyncFile(file) : s;
}

Status FaultFileSystem::SyncDir(const Path& dir) {
  Status s = Check(Op::kSyncDir, dir);
  return s.ok() ? real_.SyncDir(dir) : s;
}

Status FaultFileSystem::Rename(const Path& from, const Path& to) {
  Status s = Check(Op::kRename, from);
  return s.ok() ? real_.Rename(from, to) : s;
}

Result<bool> FaultFileSystem::Remove(const Path& file) {
  if (Status s = Check(Op::kRemove, file); !s.ok()) return s;
  return real_.Remove(file);
}

Status FaultFileSystem::CopyFile(const Path& from, const Path& to) {
  Status s = Check(Op::kCopyFile, from);
  return s.ok() ? real_.CopyFile(from, to) : s;
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

#include "store/quarantine.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace agentkv {

namespace fs = std::filesystem;

namespace {
void LogIfFailed(const Status& s) {
  if (!s.ok()) spdlog::debug("{}", s.message());
}
}  // namespace

Status Quarantine::Check() {
  Result<FileSystem::Kind> kind = files_.KindOf(dir_);
  if (kind.ok() && kind.value() == FileSystem::Kind::kDirectory) return Status::Ok();
  return Status::Error(ErrorCode::kIo,
                       dir_.string() + " is not a directory of its own (" +
                           (kind.ok() ? "a symbolic link, or a file" : kind.status().message()) +
                           "): agentkv moves and deletes files in it, and will not elsewhere; "
                           "remove it");
}

bool Quarantine::Keep(const fs::path& from, const std::vector<std::string>& names,
                      const std::string& label, const std::string& reason, bool new_event) {
  std::string prefix;
  {
    MutexLock lock(mu_);
    if (new_event) ++events_;
    // Zero-padded: names sort oldest first.
    // Another node quarantines into the same directory: its names differ.
    prefix = fmt::format("{:012d}-{:06d}{}.", now_(), ++seq_ % 1000000,
                         node_.empty() ? "" : "-" + node_);
  }
  LogIfFailed(files_.CreateDirs(dir_));
  if (Status own = Check(); !own.ok()) {
    spdlog::error("files of {} left in place: {}", label, own.message());
    return false;
  }
  for (const std::string& name : names) {
    if (!name.empty()) LogIfFailed(files_.Rename(from / name, dir_ / (prefix + name)));
  }
  LogIfFailed(files_.WriteFile(dir_ / (prefix + label + ".reason"), reason + '\n'));
  Prune();
  return true;
}

// Names of an earlier layout sort first, as oldest.
void Quarantine::Prune() {
  if (Status own = Check(); !own.ok()) {
    spdlog::error("quarantine not pruned: {}", own.message());
    return;
  }
  Result<std::vector<FileEntry>> listed = files_.ListFiles(dir_, /*sizes=*/true);
  if (!listed.ok()) {
    spdlog::warn("cannot prune the quarantine: {}", listed.status().message());
    return;
  }
  std::vector<FileEntry>& files = listed.value();
  std::sort(files.begin(), files.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
  QuarantineUsage usage;
  for (const FileEntry& f : files) usage.bytes += f.size;
  usage.files = files.size();
  for (const FileEntry& f : files) {
    if (usage.files <= bounds_.max_files && usage.bytes <= bounds_.max_bytes) break;
    Result<bool> removed = files_.Remove(dir_ / f.name);
    if (removed.ok() && removed.value()) {
      --usage.files;
      usage.bytes -= f.size;
    }
  }
  MutexLock lock(mu_);
  usage_ = usage;
}

int Quarantine::events() const {
  MutexLock lock(mu_);
  return events_;
}

QuarantineUsage Quarantine::usage() const {
  MutexLock lock(mu_);
  return usage_;
}

}  // namespace agentkv

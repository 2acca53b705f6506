#pragma once
// The memory directory's quarantine/: files that failed a check, moved
// aside with a note of why, never reused, and pruned oldest first past its
// bounds. Each event's files share one prefix (time, sequence, node) so
// that names sort oldest first and nodes of a shared directory never
// collide. Thread-safe; no lock is held during file I/O.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "agentkv/file_system.h"
#include "agentkv/mutex.h"
#include "agentkv/status.h"

namespace agentkv {

// What quarantine/ holds now.
struct QuarantineUsage {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
};

struct QuarantineBounds {
  std::uint64_t max_files = 64;
  std::uint64_t max_bytes = 1ull << 30;
};

class Quarantine {
 public:
  using WallClock = std::function<std::int64_t()>;  // unix seconds

  // `dir`: the quarantine directory itself; `node` as in StoreFiles.
  Quarantine(FileSystem& files, std::filesystem::path dir, QuarantineBounds bounds, WallClock now,
             std::string node)
      : files_(files),
        dir_(std::move(dir)),
        bounds_(bounds),
        now_(std::move(now)),
        node_(std::move(node)) {}

  const std::filesystem::path& dir() const { return dir_; }
  // kIo unless the directory is a directory itself, not a link to one: moved
  // or deleted through a link, files elsewhere would go.
  Status Check();
  // Moves `names` (files in `from`; "" entries skipped) into the directory
  // and writes `reason` to <label>.reason beside them, then prunes. Each
  // step on its own: whatever moves is kept aside, whatever fails is logged
  // and the rest still tried. If the directory fails Check, nothing moves
  // and false is returned. `new_event`: counts in events() (false: part of
  // an event counted already).
  bool Keep(const std::filesystem::path& from, const std::vector<std::string>& names,
            const std::string& label, const std::string& reason, bool new_event = true);
  // Deletes the oldest files past the bounds and records the usage.
  void Prune();
  int events() const;
  QuarantineUsage usage() const;

 private:
  FileSystem& files_;
  const std::filesystem::path dir_;
  const QuarantineBounds bounds_;
  const WallClock now_;
  const std::string node_;

  mutable Mutex mu_;
  int events_ GUARDED_BY(mu_) = 0;
  std::uint64_t seq_ GUARDED_BY(mu_) = 0;
  QuarantineUsage usage_ GUARDED_BY(mu_);
};

}  // namespace agentkv

#include "upstream/child_record.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "agentkv/errno_text.h"

namespace agentkv {

namespace fs = std::filesystem;

namespace {

struct Record {
  pid_t pid = -1;
  unsigned long long start_ticks = 0;
  std::string boot_id;
  pid_t parent = -1;  // the agentkv that started it
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string BootId() {
  std::string id = ReadFile("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

// Field 22 of /proc/PID/stat, counted after the command name's closing
// parenthesis (the name itself may hold spaces and parentheses).
std::optional<unsigned long long> StatField(pid_t pid, int number) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= number; ++i) {
    if (!(fields >> field)) return std::nullopt;
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return std::nullopt;
  }
}

// When the process started, in clock ticks since boot (field 22).
std::optional<unsigned long long> StartTicks(pid_t pid) { return StatField(pid, 22); }

// Its parent (field 4): the agentkv that started it while that one runs,
// else whoever reaped it (init, a subreaper). A pid that was reused cannot
// be the parent of a process it did not start, so this needs no start time
// of the parent (which, read by a process of itself, qemu-user fakes).
std::optional<unsigned long long> ParentOf(pid_t pid) { return StatField(pid, 4); }

std::vector<std::string> CommandLine(pid_t pid) {
  const std::string raw = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  std::size_t start = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\0') {
      args.push_back(raw.substr(start, i - start));
      start = i + 1;
    }
  }
  return args;
}

bool SameDirectory(const std::string& a, const fs::path& b) {
  std::error_code ec1, ec2;
  const bool same = fs::equivalent(a, b, ec1);
  return !ec1 && same;
}

// The process serves slots from `memory_dir`: ours to end.
bool ServesFrom(pid_t pid, const fs::path& memory_dir) {
  const std::vector<std::string> args = CommandLine(pid);
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--slot-save-path" && SameDirectory(args[i + 1], memory_dir)) return true;
  }
  return false;
}

std::optional<Record> Parse(const std::string& text) {
  std::istringstream in(text);
  Record r;
  long long pid = 0, parent = 0;
  if (!(in >> pid >> r.start_ticks >> r.boot_id >> parent) || pid <= 1 || pid > (1 << 22) ||
      parent <= 0 || parent > (1 << 22)) {
    return std::nullopt;
  }
  r.pid = static_cast<pid_t>(pid);
  r.parent = static_cast<pid_t>(parent);
  return r;
}

// Waits until `pid` has gone (a pidfd turns readable when it exits).
bool AwaitGone(pid_t pid, int pidfd, std::chrono::milliseconds bound) {
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(bound.count())) == 1;
  }
  const auto deadline = std::chrono::steady_clock::now() + bound;  // kernels before 5.3
  while (::kill(pid, 0) == 0 || errno != ESRCH) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ::usleep(20000);
  }
  return true;
}

}  // namespace

fs::path ChildRecordPath(const fs::path& memory_dir, const std::string& node) {
  return memory_dir /
         (node.empty() ? "agentkv-llama-server.pid" : "agentkv-llama-server." + node + ".pid");
}

Status WriteChildRecord(const fs::path& record, pid_t pid) {
  const std::optional<unsigned long long> ticks = StartTicks(pid);
  if (!ticks) {
    return Status::Error(ErrorCode::kIo, "cannot read /proc/" + std::to_string(pid) + "/stat");
  }
  fs::path temp = record;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << pid << ' ' << *ticks << ' ' << BootId() << ' ' << ::getpid() << '\n';
    if (!out.flush()) {
      return Status::Error(ErrorCode::kIo, "cannot write " + temp.string());
    }
  }
  std::error_code ec;
  fs::permissions(temp, fs::perms::owner_read | fs::perms::owner_write, ec);
  fs::rename(temp, record, ec);
  if (ec) {
    return Status::Error(ErrorCode::kIo, "cannot write " + record.string() + ": " + ec.message());
  }
  return Status::Ok();
}

void RemoveChildRecord(const fs::path& record) {
  std::error_code ec;
  fs::remove(record, ec);
}

Status EndRecordedChild(const fs::path& record, const fs::path& memory_dir, RecordedChild* found) {
  *found = RecordedChild{};
  std::error_code ec;
  if (!fs::exists(record, ec)) return Status::Ok();
  const std::optional<Record> r = Parse(ReadFile(record));
  const bool ours = r && r->boot_id == BootId() && StartTicks(r->pid) == r->start_ticks &&
                    ServesFrom(r->pid, memory_dir);
  if (ours && ParentOf(r->pid) == static_cast<unsigned long long>(r->parent)) {
    found->live_parent = r->parent;  // its agentkv runs: not an orphan, and not our record
    found->left_running = r->pid;
    return Status::Ok();
  }
  if (ours) {
    // Opened before the start time is read again below: the pidfd then
    // names this very process, and no reused pid can be signalled.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, r->pid, 0));
    if (StartTicks(r->pid) == r->start_ticks) {
      const int sent =
          pidfd >= 0
              ? static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0U))
              : ::kill(r->pid, SIGKILL);
      if (sent != 0 && errno != ESRCH) {
        const std::string why = ErrnoText(errno);
        if (pidfd >= 0) ::close(pidfd);
        return Status::Error(ErrorCode::kIo, "cannot end the llama-server (pid " +
                                                 std::to_string(r->pid) +
                                                 ") left by an earlier agentkv: " + why);
      }
      const bool gone = AwaitGone(r->pid, pidfd, std::chrono::seconds(10));
      if (pidfd >= 0) ::close(pidfd);
      if (!gone) {
        return Status::Error(ErrorCode::kIo,
                             "the llama-server (pid " + std::to_string(r->pid) +
                                 ") left by an earlier agentkv did not exit after SIGKILL");
      }
      found->ended = r->pid;
    } else if (pidfd >= 0) {
      ::close(pidfd);
    }
  }
  RemoveChildRecord(record);
  return Status::Ok();
}

}  // namespace agentkv

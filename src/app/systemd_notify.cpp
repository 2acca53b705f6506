#include "app/systemd_notify.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "agentkv/errno_text.h"

namespace agentkv::systemd {

namespace {

// One line of state: no newline may end it early.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

// A socket that cannot be written never stops agentkv: one warning.
void Notify(const std::string& state) {
  const int sent = sd_notify(0, state.c_str());
  static std::atomic<bool> warned{false};
  if (sent < 0 && !warned.exchange(true)) {
    const char* socket = std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe)
    spdlog::warn("cannot tell systemd ({}): NOTIFY_SOCKET {}: {}", OneLine(state),
                 socket ? socket : "(unset)", ErrnoText(-sent));
  }
}

}  // namespace

void Ready(const std::string& status) { Notify("READY=1\nSTATUS=" + OneLine(status)); }

void Status(const std::string& status) { Notify("STATUS=" + OneLine(status)); }

void ExtendTimeout(std::chrono::seconds more) {
  Notify("EXTEND_TIMEOUT_USEC=" +
         std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(more).count()));
}

void Stopping(const std::string& status) { Notify("STOPPING=1\nSTATUS=" + OneLine(status)); }

void Alive() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) Notify("WATCHDOG=1");
}

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");  // NOLINT(concurrency-mt-unsafe): read once
  if (stream == nullptr) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == device && st.st_ino == inode;
}

}  // namespace agentkv::systemd

#include "app/systemd_notify.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace agentkv::systemd {

namespace {

// One line of state: no newline may end it early.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

void Notify(const std::string& state) { sd_notify(0, state.c_str()); }

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

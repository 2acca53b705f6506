#pragma once
// systemd's service notification protocol (sd_notify, libsystemd), for a
// unit of Type=notify: readiness, status lines, a longer start while the
// model loads, the stop, and the watchdog. Every call is a no-op without
// NOTIFY_SOCKET (a terminal, a container, a Type=simple unit). Thread-safe.

#include <chrono>
#include <string>

namespace agentkv::systemd {

// READY=1: agentkv serves (what /readyz answers 200 to).
void Ready(const std::string& status);
// STATUS=: one line `systemctl status` shows.
void Status(const std::string& status);
// EXTEND_TIMEOUT_USEC=: the start (or stop) may take `more` from now on,
// whatever TimeoutStartSec says (a large model loads for minutes).
void ExtendTimeout(std::chrono::seconds more);
// STOPPING=1: the stop has begun.
void Stopping(const std::string& status);
// WATCHDOG=1 if the unit has WatchdogSec= (else nothing): call from a loop
// that runs only while agentkv is alive, more often than WatchdogSec.
void Alive();

// True if journald reads agentkv's stderr (JOURNAL_STREAM names it):
// log lines then carry their priority as a "<N>" prefix.
bool StderrIsJournal();

}  // namespace agentkv::systemd

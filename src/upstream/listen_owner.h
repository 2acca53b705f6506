#pragma once
// Whether a TCP port on this host is listened on by a given process: how
// agentkv knows that what answers on the port it chose for llama-server is
// its own child, not a process that took the port first (ports are picked
// by binding, closing and reusing, so another can win the race). Linux
// /proc only. Thread-safe (no state).

#include <sys/types.h>

#include "agentkv/status.h"

namespace agentkv {

// True if process `pid` holds a socket listening on TCP `port` (IPv4 or
// IPv6), false if no such socket is its. kUnsupported if /proc cannot tell
// (not Linux, or /proc not mounted).
Result<bool> ListensOn(pid_t pid, int port);

}  // namespace agentkv

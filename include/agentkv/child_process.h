#pragma once
// A server process agentkv starts and may restart (llama-server, or a fake
// in tests). Not thread-safe, except pid(): one thread at a time drives it.

#include <sys/types.h>

#include <chrono>

#include "agentkv/status.h"

namespace agentkv {

class ChildProcess {
 public:
  virtual ~ChildProcess() = default;

  // Starts the process and returns without waiting for it to serve. Returns
  // kInvalidArgument if it cannot be started as configured, kIo if the
  // system refuses (fork, its log file).
  virtual Status Spawn() = 0;
  // Ends the process: SIGTERM, then SIGKILL after `grace`. Blocks until it
  // is gone. Idempotent.
  virtual void Stop(std::chrono::seconds grace) = 0;
  // True (once) if the process has exited on its own since Spawn(); stores
  // its wait status. Never blocks.
  virtual bool Exited(int* wait_status) = 0;
  // The running process's id, or -1. Safe from any thread.
  virtual pid_t pid() const = 0;
};

}  // namespace agentkv

#pragma once
// The one way a test starts a process: posix_spawn with file actions, so
// nothing runs in the child between fork and exec but the C library's own
// async-signal-safe steps. Other threads of the test (servers, readers) keep
// running meanwhile; every descriptor the launcher opens is close-on-exec,
// so a child started by one thread never holds another child's pipe.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace agentkv::testing {

struct LaunchOptions {
  // Where stdout and stderr go: a pipe this side reads (Launched::output),
  // a file (truncated), or, neither set, the test's own.
  bool pipe_output = false;
  std::filesystem::path output_file;
  // A pipe to its stdin (Launched::input); else it reads the test's own.
  bool pipe_input = false;
  // Lead a process group of its own, as a shell job does.
  bool own_group = false;
  // "NAME=VALUE" set, or "NAME" removed, in a copy of the test's environment.
  std::vector<std::string> env;
};

struct Launched {
  pid_t pid = -1;   // -1: it did not start (error says why)
  int output = -1;  // read end of its stdout and stderr, if piped; the caller closes it
  int input = -1;   // write end of its stdin, if piped; the caller closes it
  std::string error;
};

// Starts argv[0] (a path, or a name looked up in PATH) with `argv`. Signals
// start at their defaults and unblocked, whatever the test ignores
// (cpp-httplib ignores SIGPIPE). The caller reaps the process.
Launched Launch(const std::vector<std::string>& argv, const LaunchOptions& options = {});

// Runs `argv` to its end with `input` on its stdin ("": none), and returns
// its wait status and what it wrote to stdout and stderr.
struct Finished {
  int status = -1;  // as waitpid gives it; -1: it did not start
  std::string output;
};
Finished RunToEnd(const std::vector<std::string>& argv, const std::string& input = "");

// Blocks until `pid` ends and returns its wait status.
int Reap(pid_t pid);

// The id of a process that has ended and been reaped: one that no running
// process has (until the kernel hands the number out again).
pid_t EndedPid();

}  // namespace agentkv::testing

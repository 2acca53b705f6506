#pragma once
// How a child process ended, in words an operator can act on.

#include <string>

namespace agentkv {

// `wait_status` as waitpid() stores it: "exited with status 1", or "was
// killed by SIGILL (Illegal instruction)" followed, for the signals whose
// cause is known (SIGILL, SIGKILL, SIGBUS, SIGSEGV, SIGABRT), by one
// sentence on what it means for llama-server and what to do. Thread-safe.
std::string DescribeExit(int wait_status);

}  // namespace agentkv

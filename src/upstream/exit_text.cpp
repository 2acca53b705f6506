#include "upstream/exit_text.h"

#include <sys/wait.h>

#include <csignal>
#include <cstring>

namespace agentkv {

namespace {

// What a signal that ends llama-server usually means, and what to do.
const char* Advice(int signal) {
  switch (signal) {
    case SIGILL:
      return "llama-server ran an instruction this CPU cannot run: it was built for another "
             "CPU (GGML_NATIVE on a different machine), or miscompiled for this one (ggml's AMX "
             "kernels built by GCC 12). Rebuild it on this machine (scripts/setup.sh checks the "
             "build it makes and picks one that runs), or pass -- --no-repack to agentkv serve "
             "to turn off llama-server's repacked and AMX kernels";
    case SIGKILL:
      return "most often the kernel's out-of-memory killer (see dmesg), else another process; "
             "fewer slots, a smaller --ctx-size or a quantized KV cache need less RAM";
    case SIGBUS:
      return "a mapped file became unreadable: the model file was truncated, replaced or "
             "is on a file system that failed";
    case SIGSEGV:
    case SIGABRT:
      return "llama-server crashed: its log has the last thing it did; a model it does not "
             "support or a bug in this llama.cpp build are the usual causes";
    default:
      return nullptr;
  }
}

}  // namespace

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  if (!WIFSIGNALED(wait_status)) return "ended with wait status " + std::to_string(wait_status);
  const int signal = WTERMSIG(wait_status);
  const char* name = ::sigabbrev_np(signal);
  const char* what = ::sigdescr_np(signal);
  std::string text =
      "was killed by " + (name ? "SIG" + std::string(name) : "signal " + std::to_string(signal));
  if (what) text += " (" + std::string(what) + ")";
  if (const char* advice = Advice(signal)) text += ": " + std::string(advice);
  return text;
}

}  // namespace agentkv

#pragma once
// `agentkv serve` as a child process, so that tests can signal or kill it.
// Its output is collected; construction returns once it listens.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "integration/real_llama.h"
#include "support/launcher.h"
#include "upstream/llama_process.h"

namespace agentkv::testing {

// `serve` arguments for an agentkv that starts its own llama-server on the
// test model (one thread), memory in `dir`/memory, llama-server's log in
// `dir`/llama.log.
inline std::vector<std::string> OwnLlamaArgs(const std::filesystem::path& dir) {
  return {"--memory-dir",
          (dir / "memory").string(),
          "--model",
          TestModel().string(),
          "--llama-log",
          (dir / "llama.log").string(),
          "--",
          "--threads",
          "1"};
}

class AgentkvProcess {
 public:
  struct Options {
    bool own_group = false;  // lead a process group of its own, as a shell job does
    int port = 0;            // 0: a free port
    // The construction returns once this appears in its output.
    std::string ready_line = "agentkv listening";
    // Its environment: the test's, with these set ("NAME=VALUE") or removed ("NAME").
    std::vector<std::string> env;
  };

  // `agentkv serve --upstream URL --memory-dir DIR` on a free port.
  AgentkvProcess(const std::string& upstream, const std::filesystem::path& memory)
      : AgentkvProcess({"--upstream", upstream, "--memory-dir", memory.string()}, Options{}) {}

  // `agentkv serve --port P --log-level debug` followed by `args`.
  AgentkvProcess(const std::vector<std::string>& args, const Options& options) {
    port_ = options.port > 0 ? options.port : FindFreePort();
    std::vector<std::string> argv_s = {AGENTKV_BINARY,        "serve",       "--port",
                                       std::to_string(port_), "--log-level", "debug"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    LaunchOptions launch;
    launch.pipe_output = true;  // the output closes when agentkv exits, not its child
    launch.own_group = options.own_group;
    launch.env = options.env;
    const Launched child = Launch(argv_s, launch);
    EXPECT_GT(child.pid, 0) << child.error;
    pid_ = child.pid;
    if (pid_ < 0) {
      eof_ = true;  // nothing will say more
      return;
    }
    reader_ = std::thread([this, fd = child.output] {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        std::lock_guard<std::mutex> lock(mu_);
        log_.append(buf, static_cast<size_t>(n));
        changed_.notify_all();
      }
      ::close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      eof_ = true;
      changed_.notify_all();
    });
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return eof_ || log_.find(options.ready_line) != std::string::npos; });
    // A process that says its line and exits at once may be seen ended too.
    EXPECT_NE(log_.find(options.ready_line), std::string::npos) << log_;
  }
  ~AgentkvProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
    if (reader_.joinable()) reader_.join();
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  // Blocks until `text` appears in its output, at most `timeout`; false if
  // it did not (or the output closed first).
  bool WaitForLog(const std::string& text, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, timeout, [&] {
      return eof_ || log_.find(text) != std::string::npos;
    }) && log_.find(text) != std::string::npos;
  }
  // Blocks until the process exits (its output closes) and returns its status.
  int Wait() { return *WaitFor(std::chrono::hours(24)); }
  // As Wait(), but gives up after `timeout` (nullopt: still running).
  std::optional<int> WaitFor(std::chrono::seconds timeout) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!changed_.wait_for(lock, timeout, [&] { return eof_; })) return std::nullopt;
    }
    if (pid_ < 0) return -1;  // never started, or reaped already
    const int status = Reap(pid_);
    pid_ = -1;
    return status;
  }
  int Terminate() {
    ::kill(pid_, SIGTERM);
    return Wait();
  }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::string log_;
  bool eof_ = false;
};

}  // namespace agentkv::testing

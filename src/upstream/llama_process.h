#pragma once
// A llama-server child process that agentkv starts and stops itself.
// Not thread-safe, except pid(): one thread at a time drives it (in
// `agentkv serve`, the UpstreamSupervisor's).

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agentkv/child_process.h"
#include "agentkv/status.h"

namespace agentkv {

class Upstream;

struct LlamaProcessOptions {
  std::filesystem::path binary;         // llama-server
  std::filesystem::path model;          // GGUF file
  std::filesystem::path memory_dir;     // becomes --slot-save-path
  int slots = 2;                        // -np
  int port = 0;                         // 0: a free loopback port
  std::vector<std::string> extra_args;  // passed through, after ours
  std::filesystem::path log_file;       // empty: inherit agentkv's stderr
  // Where the running child is recorded (child_record.h), so that the next
  // agentkv on the memory directory can end it if it outlives this one;
  // empty: not recorded.
  std::filesystem::path record_file;
  // llama-server's --api-key, given through its environment (other local
  // users can read a process's arguments, not its environment); empty: none.
  std::string api_key;
  std::chrono::seconds ready_timeout{300};
};

class LlamaProcess final : public ChildProcess {
 public:
  LlamaProcess() = default;
  // Picks the port now (options.port, or a free one): base_url() holds
  // before Spawn().
  explicit LlamaProcess(LlamaProcessOptions options);
  LlamaProcess(const LlamaProcess&) = delete;
  LlamaProcess& operator=(const LlamaProcess&) = delete;
  ~LlamaProcess() override { Stop(); }

  // Starts llama-server and blocks until its /health answers 200 from its
  // own port (CheckHealth). Returns kInvalidArgument if the binary or
  // model is missing, kUpstreamDown if it exits or does not become ready
  // within ready_timeout (it is then killed).
  Status Start(const LlamaProcessOptions& options);

  // ChildProcess: starts llama-server with the options given last, without
  // waiting for its /health, and records it at record_file. It gets SIGKILL
  // when the calling thread ends (agentkv killed, or crashed): call from a
  // thread that outlives it. Returns kInvalidArgument if the binary or model
  // is missing, kIo if its log file cannot be opened or fork fails.
  Status Spawn() override;

  // SIGTERM, then SIGKILL after `grace`. Idempotent.
  void Stop(std::chrono::seconds grace = std::chrono::seconds(10)) override;

  // True (once) if the process has exited on its own; reaps it and stores
  // its wait status. Spawn() may then be called again: the port stays.
  bool Exited(int* wait_status) override;

  // OK if `upstream` (pointing at base_url()) answers /health and the
  // running llama-server is what listens on its port; kUpstreamDown if
  // another process holds the port (or none does). The port check passes
  // when /proc cannot tell.
  Status CheckHealth(Upstream& upstream) const;

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const override { return pid_; }

  // The arguments agentkv passes to llama-server, for logs and tests.
  static std::vector<std::string> Arguments(const LlamaProcessOptions& options, int port);

 private:
  void PickPort();

  LlamaProcessOptions options_;
  std::atomic<pid_t> pid_{-1};  // read by other threads (pid())
  int port_ = 0;                // kept across restarts
  std::thread output_reader_;   // copies llama-server's output into our log
};

// A TCP port on 127.0.0.1 that was free a moment ago; 0 on failure.
int FindFreePort();

}  // namespace agentkv

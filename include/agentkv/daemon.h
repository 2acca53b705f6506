#pragma once
// Everything `agentkv serve` runs, wired together: optionally a llama-server
// child, the upstream client, the store, the slot pool and the http front.
// Start() returns once the front listens; Stop() may be called from any
// thread, once.

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "agentkv/llama_process.h"
#include "agentkv/placer.h"
#include "agentkv/proxy_server.h"

namespace agentkv {

struct DaemonOptions {
  ProxyOptions proxy;
  UpstreamOptions upstream;  // base_url is ignored when `launch` is set
  QueueLimits queue;
  std::filesystem::path memory_dir;
  // Start llama-server as a child (its memory_dir is set from ours).
  std::optional<LlamaProcessOptions> launch;
  // How long to wait for an external upstream's /health.
  std::chrono::seconds upstream_ready_timeout{60};
};

class Daemon {
 public:
  // Returns kInvalidArgument/kIo/kUpstream* with a message a user can act on.
  static Result<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon();

  int port() const { return port_; }
  int slot_count() const { return pool_->slot_count(); }
  const std::string& upstream_url() const { return upstream_->base_url(); }
  SlotPool& pool() { return *pool_; }
  // Stops serving, then the llama-server child if any. Idempotent.
  void Stop();

 private:
  Daemon() = default;

  LlamaProcess llama_;
  std::unique_ptr<Upstream> upstream_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SlotPool> pool_;
  std::unique_ptr<Placer> placer_;
  std::unique_ptr<ProxyServer> server_;
  std::thread serve_thread_;
  std::atomic<bool> serve_returned_{false};
  int port_ = 0;
};

}  // namespace agentkv

#pragma once
// Everything `agentkv serve` runs, wired together: the upstream client, its
// supervisor (health watch, and optionally a llama-server child), the store,
// the slot pool, the placer and the http front. Start() returns once the
// front listens; Stop() may be called from any thread.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "core/memory_ops.h"
#include "core/placer.h"
#include "http/proxy_server.h"
#include "store/dir_lock.h"
#include "upstream/llama_process.h"
#include "upstream/upstream_supervisor.h"

namespace agentkv {

// KV settings llama-server does not report, part of every file's fingerprint.
// Read from the arguments when agentkv starts llama-server.
struct KvSettings {
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  bool swa_full = false;
  static KvSettings FromArgs(const std::vector<std::string>& llama_args);
};

struct DaemonOptions {
  // Called by the watch loop after each check of llama-server (systemd's
  // watchdog); null: nothing.
  std::function<void()> on_alive;
  ProxyOptions proxy;
  UpstreamOptions upstream;  // base_url is ignored when `launch` is set
  QueueLimits queue;
  std::filesystem::path memory_dir;
  StoreOptions store;
  SavePolicy save_policy = SavePolicy::kTurnEnd;
  // How long a turn-end save may wait for requests' first tokens.
  SaveDeferral save_deferral;
  int max_pins = 1;
  // Which idle agent gives up its slot: the one least likely back soon.
  Eviction eviction = Eviction::kPredicted;
  // Restores ahead of requests, and saves of agents in tool calls delayed.
  // A shared directory (store.node) saves every turn at its end whatever
  // save_delay says: another node may serve the agent's next turn.
  ReturnAware return_aware{false, std::chrono::seconds(30)};
  KvSettings kv;  // when fronting an external llama-server
  // Start llama-server as a child (its memory_dir is set from ours).
  std::optional<LlamaProcessOptions> launch;
  // How long to wait for an external upstream's /health.
  std::chrono::seconds upstream_ready_timeout{60};
  // How often to check llama-server's health (to notice restarts).
  std::chrono::milliseconds health_interval{1000};
  // On Stop(): how long requests in flight may take to finish.
  std::chrono::seconds drain_timeout{30};
  // On Stop(): how long the whole stop may take (drain, saves, llama-server);
  // below systemd's TimeoutStopSec (90 s in our unit).
  std::chrono::seconds stop_timeout{60};
  // While llama-server is down, how long a request waits for it (then 503).
  std::chrono::seconds upstream_wait{60};
  // A llama-server we started that dies is restarted, with a backoff, at
  // most this many times in a row without a healthy minute in between.
  int max_restarts = 5;
  // With `launch`: RAM for the slots' KV (0: none). With ctx_per_slot > 0
  // the slot count follows from it, else the context of launch->slots slots
  // (see PlanSlots); the model's cost is measured by a short llama-server
  // run at start.
  std::uint64_t kv_ram_budget = 0;
  long long ctx_per_slot = 0;
  // New agents start from a snapshot of a prompt prefix at least this many
  // tokens long that two agents of one API key sent (see core/prefixes.h);
  // 0: never. Only for models whose KV can be cut back to a prefix.
  std::size_t prefix_min_tokens = 128;
};

class Daemon {
 public:
  // Returns kInvalidArgument/kIo/kUpstream* with a message a user can act on.
  static Result<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon();

  int port() const { return port_; }
  int slot_count() const { return pool_->slot_count(); }
  const std::string& upstream_url() const { return upstream_->base_url(); }
  // llama-server's key (random for one agentkv started): for tests that
  // read llama-server's own endpoints. Never log it.
  const std::string& upstream_key() const { return options_.upstream.api_key; }
  SlotPool& pool() { return *pool_; }
  Placer& placer() { return *placer_; }
  MemoryOps& memory() { return *memory_; }
  Store& store() { return *store_; }
  Metrics& metrics() { return metrics_; }
  Activity& activity() { return activity_; }
  const ProxyServer& front() const { return *server_; }
  // The llama-server agentkv started, or -1.
  pid_t llama_pid() const { return supervisor_->child_pid(); }
  GaugeSnapshot Gauges() const;
  // Graceful stop within stop_timeout: refuse new requests, let those in
  // flight finish within drain_timeout (then cancel them), save dirty
  // resident agents least recently used first, stop llama-server if ours.
  // Returns how many dirty agents were left unsaved. Idempotent.
  int Stop();

 private:
  Daemon() = default;
  // Starts llama-server (ours if `llama` is set) and waits for its health.
  Status StartSupervisor(const DaemonOptions& o, std::unique_ptr<LlamaProcess> llama);

  DaemonOptions options_;
  std::unique_ptr<DirLock> lock_;  // the memory directory's, until Stop() ends
  std::unique_ptr<Upstream> upstream_;
  std::unique_ptr<UpstreamSupervisor> supervisor_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SlotPool> pool_;
  Metrics metrics_;
  std::unique_ptr<Placer> placer_;
  std::unique_ptr<MemoryOps> memory_;
  Activity activity_;
  std::unique_ptr<StatusReport> status_;
  std::unique_ptr<AdminApi> admin_;
  std::unique_ptr<Prefixes> prefixes_;
  std::unique_ptr<PrefixPath> prefix_path_;
  std::unique_ptr<ProxyServer> server_;
  std::thread serve_thread_;
  std::atomic<bool> serve_returned_{false};
  std::atomic<bool> stopped_{false};
  int port_ = 0;
};

}  // namespace agentkv

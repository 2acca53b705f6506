#include "app/serve_flags.h"

#include <CLI/CLI.hpp>
#include <chrono>

#include "app/key_files.h"
#include "app/paths.h"
#include "http/browser_policy.h"
#include "store/store_files.h"

namespace agentkv {

namespace {

Status Invalid(std::string message) {
  return Status::Error(ErrorCode::kInvalidArgument, std::move(message));
}

// Where it listens, the llama-server it starts or fronts, and where memory goes.
void DeclareWhatItServes(CLI::App& serve, DaemonOptions& o, ServeFlags& f) {
  serve.add_option("--host", o.proxy.host, "Address to listen on")->capture_default_str();
  serve.add_option("--port", o.proxy.port, "Port to listen on (0: any)")->capture_default_str();
  serve.add_option("--upstream", f.upstream,
                   "URL of a running llama-server to front (it must use "
                   "--slot-save-path = --memory-dir); default: start one");
  serve.add_option("--model,-m", f.launch.model,
                   "GGUF model for the llama-server agentkv starts (default: the demo "
                   "model written by scripts/setup.sh)");
  serve.add_option("--llama-server", f.launch.binary, "llama-server binary to start")
      ->capture_default_str();
  serve.add_option("--slots", f.launch.slots, "Slots (llama-server -np) when starting it")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  serve
      .add_option("--kv-ram-budget", o.kv_ram_budget,
                  "Bytes of RAM for the slots' KV: the slot count (or, with --slots, the "
                  "context per slot) follows from the model's measured cost")
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--ctx-per-slot", o.ctx_per_slot,
                  "With --kv-ram-budget: each slot's context; as many slots as fit")
      ->check(CLI::NonNegativeNumber);
  serve.add_option("--memory-dir", o.memory_dir, "Directory of saved agent KV files")
      ->capture_default_str();
  serve
      .add_option("--node-id", o.store.node,
                  "This node's name ([a-z0-9-], at most 32) when --memory-dir is shared with "
                  "other agentkv nodes (each with its own llama-server and the same model); "
                  "setting it makes the directory shared")
      ->check([](const std::string& v) {
        return StoreFiles::ValidNodeName(v) ? "" : "--node-id: use 1 to 32 of [a-z0-9-]";
      });
}

// What one client or request may take: bodies, connections, the wait for a slot.
void DeclareLimits(CLI::App& serve, DaemonOptions& o, ServeFlags& f) {
  serve.add_option("--max-body-bytes", o.proxy.max_body_bytes, "Largest request body")
      ->capture_default_str();
  serve
      .add_option("--max-passthrough-body-bytes", o.proxy.max_passthrough_body_bytes,
                  "Largest request body to a route passed through to llama-server "
                  "(/tokenize, /apply-template...)")
      ->capture_default_str();
  serve
      .add_option("--max-json-values", o.proxy.max_json_values,
                  "Most values (object keys included) in a JSON request body")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  serve
      .add_option("--max-connections", o.proxy.connections.max_connections,
                  "Client connections served at once; more get 503 (control routes excepted)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  serve
      .add_option("--max-connections-per-client", o.proxy.connections.max_connections_per_client,
                  "Connections from one client address; more get 503")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  serve
      .add_option("--request-timeout-ms", f.request_timeout_ms,
                  "Longest time a client may take to send a request's head and body, then 408")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      .add_option("--max-queue", o.queue.max_waiting,
                  "Requests that may wait for a slot; more get 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--max-queue-per-agent", o.queue.max_waiting_per_agent,
                  "Of the waiting requests, how many may be one agent's; more get 503")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      .add_option("--max-new-agents-per-minute", o.proxy.max_new_agents_per_minute,
                  "Requests for agents agentkv does not know, per API key and minute; more get "
                  "429 (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--max-queue-per-key", o.queue.max_waiting_per_key,
                  "Of the waiting requests, how many may be one API key's (tenant's); more "
                  "get 503 (default: three quarters of --max-queue)")
      ->check(CLI::PositiveNumber);
  serve.add_option("--queue-timeout-ms", f.queue_timeout_ms, "Longest wait for a slot before 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--upstream-timeout", f.upstream_timeout_s,
                  "Seconds to wait for llama-server to answer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

// When agents are saved, evicted and restored ahead, and what the disk may hold.
void DeclareMemory(CLI::App& serve, DaemonOptions& o, ServeFlags& f) {
  serve
      .add_option("--save-policy", f.save_policy,
                  "When resident agents are saved: turn-end (after every turn, off the "
                  "request path) or eviction (only when their slot is needed)")
      ->capture_default_str()
      ->check(CLI::IsMember({"turn-end", "eviction"}));
  serve
      .add_option("--eviction", f.eviction,
                  "Which idle agent gives up its slot: predicted (done first, then those "
                  "waiting for a person, least recently used first; agents in a tool call "
                  "last) or lru (least recently used)")
      ->capture_default_str()
      ->check(CLI::IsMember({"predicted", "lru"}));
  serve
      .add_option("--prefetch", f.prefetch,
                  "Restore an evicted agent expected back (in a tool call) into a slot "
                  "before its request, when a slot is free or holds an agent expected "
                  "later, and read its file into the page cache when none is: on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  serve
      .add_option("--returning-save-delay-s", f.returning_save_delay_s,
                  "Turn-end policy: an agent expected back within this many seconds (a "
                  "tool call) is saved once its oldest unsaved turn is this old, not after "
                  "every turn; a crash costs at most that much of its turns, prefilled "
                  "again (0: save every turn at its end)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  serve
      .add_option("--save-deferral-ms", f.save_deferral_ms,
                  "Longest a turn-end save waits while requests wait for their first token "
                  "(0: saves never wait)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--disk-budget-bytes", o.store.budget_bytes,
                  "Most bytes of saved memory; least recently used agents' files go "
                  "first (0: no budget)")
      ->capture_default_str();
  serve
      .add_option("--min-free-bytes", o.store.min_free_bytes,
                  "Skip a save that would leave less free disk than this")
      ->capture_default_str();
  serve.add_option("--max-pins", o.max_pins, "Agents that may be pinned at once (< slots)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--prefix-min-tokens", o.prefix_min_tokens,
                  "New agents start from a saved snapshot of a prompt prefix at least this "
                  "long that two agents of one API key sent (0: never)")
      ->capture_default_str();
}

// llama-server supervised or fronted, the stop, damaged files, logs.
void DeclareRunning(CLI::App& serve, DaemonOptions& o, ServeFlags& f, CliSettings& out) {
  serve
      .add_option("--upstream-wait", f.upstream_wait_s,
                  "Seconds a request waits for a llama-server that is down, then 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--max-restarts", o.max_restarts,
                  "Restarts of a crashed llama-server in a row before giving up")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--drain-timeout", f.drain_s,
                  "Seconds requests in flight may take to finish on SIGTERM")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      .add_option("--stop-timeout", f.stop_s,
                  "Seconds a stop may take in all (drain, saves, llama-server); keep it "
                  "below the service manager's own limit")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      .add_option("--quarantine-max-files", o.store.quarantine_max_files,
                  "Files kept in the memory directory's quarantine/, oldest deleted first")
      ->capture_default_str();
  serve
      .add_option("--quarantine-max-bytes", o.store.quarantine_max_bytes,
                  "Bytes kept in quarantine/, oldest deleted first")
      ->capture_default_str();
  serve
      .add_option("--cache-type-k", o.kv.cache_type_k,
                  "With --upstream: the K cache type llama-server runs with (part of "
                  "every file's fingerprint)")
      ->capture_default_str();
  serve
      .add_option("--cache-type-v", o.kv.cache_type_v,
                  "With --upstream: the V cache type llama-server runs with")
      ->capture_default_str();
  serve.add_flag("--swa-full", o.kv.swa_full, "With --upstream: llama-server runs with --swa-full");
  serve.add_option("--llama-log", f.launch.log_file,
                   "File for the started llama-server's output (default: stderr)");
  serve.add_option("--log-level", out.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  serve
      .add_option("--log-format", out.log_format, "text, or json (one object a line, for journald)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
}

// API keys, the admin key, and what browsers and other hosts may do.
void DeclareAccess(CLI::App& serve, DaemonOptions& o, ServeFlags& f) {
  serve
      .add_option("--api-key-file", f.api_key_file,
                  "File of API keys, one a line: clients must send one as a Bearer token "
                  "(also AGENTKV_API_KEYS, comma-separated)")
      ->check(CLI::ExistingFile);
  serve
      .add_option("--admin-key-file", f.admin_key_file,
                  "File holding the key for /admin/ (also AGENTKV_ADMIN_KEY)")
      ->check(CLI::ExistingFile);
  serve
      .add_option("--upstream-key-file", f.upstream_key_file,
                  "File holding llama-server's own --api-key: needed with --upstream if it "
                  "has one; a llama-server agentkv starts gets a random key otherwise")
      ->check(CLI::ExistingFile);
  serve
      .add_option("--agent-namespace", f.agent_namespace,
                  "With API keys: per-key (each key has its own agents: one id under two keys "
                  "is two agents) or shared (one namespace for all keys)")
      ->capture_default_str()
      ->check(CLI::IsMember({"per-key", "shared"}));
  serve.add_flag("--metrics-need-key", o.proxy.auth.metrics_need_key,
                 "Require an API key for /metrics");
  serve.add_flag("--health-needs-key", o.proxy.auth.health_needs_key,
                 "Require an API key for /healthz and /readyz");
  serve.add_flag("--allow-no-auth", f.allow_no_auth,
                 "Serve a non-loopback --host without API keys (anyone who reaches it can "
                 "use every agent)");
  serve
      .add_option("--allowed-hosts", f.allowed_hosts,
                  "Host names clients reach agentkv by, comma-separated, besides localhost, "
                  "127.0.0.1, [::1] and --host; * accepts any (no DNS-rebinding check)")
      ->delimiter(',')
      ->allow_extra_args(false);
  serve
      .add_option("--cors-origins", o.proxy.browser.cors_origins,
                  "Origins (https://app.example:3000) whose web pages may call agentkv, "
                  "comma-separated; * for any. Default: none")
      ->delimiter(',')
      ->allow_extra_args(false);
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// The Host names agentkv answers to, besides the loopback names.
Status SetAllowedHosts(const std::vector<std::string>& given, ProxyOptions& o) {
  o.browser.allowed_hosts = ListenHostNames(o.host);
  for (const std::string& entry : given) {
    Result<std::string> name = NormalizeHostName(entry);
    if (!name.ok())
      return Status::Error(ErrorCode::kInvalidArgument,
                           "--allowed-hosts: " + name.status().message());
    o.browser.allowed_hosts.push_back(name.value());
  }
  return Status::Ok();
}

}  // namespace

void DeclareServeFlags(CLI::App& serve, CliSettings& out, ServeFlags& f) {
  DaemonOptions& o = out.daemon;
  o.memory_dir = DefaultMemoryDir();
  f.launch.binary = DefaultLlamaServer();
  f.upstream_timeout_s = o.upstream.read_timeout.count();
  f.queue_timeout_ms = o.queue.max_wait.count();
  f.request_timeout_ms = o.proxy.connections.request_timeout.count();
  f.save_deferral_ms = o.save_deferral.bound.count();
  f.returning_save_delay_s =
      std::chrono::duration_cast<std::chrono::seconds>(o.return_aware.save_delay).count();
  f.upstream_wait_s = o.upstream_wait.count();
  f.drain_s = o.drain_timeout.count();
  f.stop_s = o.stop_timeout.count();
  f.prefetch = o.return_aware.prefetch ? "on" : "off";
  DeclareWhatItServes(serve, o, f);
  DeclareLimits(serve, o, f);
  DeclareMemory(serve, o, f);
  DeclareRunning(serve, o, f, out);
  DeclareAccess(serve, o, f);
  serve.add_option("llama_args", f.launch.extra_args,
                   "Arguments after -- go to the llama-server agentkv starts");
  serve.footer(
      "Every option can also be set as AGENTKV_<NAME> (AGENTKV_PORT for --port) or in a TOML\n"
      "file given with --config (AGENTKV_CONFIG), keys under [serve]; flags win over the\n"
      "environment, which wins over the file. See configs/agentkv.toml.\n\n"
      "Example: agentkv serve --model m.gguf --slots 4 -- --ctx-size 16384 --threads 8");
}

Status ApplyServeFlags(const ServeFlags& f, DaemonOptions& o) {
  if (Status s = LoadKeys(f.api_key_file, f.admin_key_file, f.upstream_key_file, o); !s.ok()) {
    return s;
  }
  if (Status s = SetAllowedHosts(f.allowed_hosts, o.proxy); !s.ok()) return s;
  if (!IsLoopback(o.proxy.host) && o.proxy.auth.api_keys.empty() && !f.allow_no_auth) {
    return Invalid("--host " + o.proxy.host +
                   " is reachable from other machines, and no API keys are set: anyone who "
                   "reaches it could use every agent and its memory. Set keys (--api-key-file "
                   "or AGENTKV_API_KEYS), or pass --allow-no-auth to serve without them.");
  }
  o.upstream.read_timeout = std::chrono::seconds(f.upstream_timeout_s);
  o.queue.max_wait = std::chrono::milliseconds(f.queue_timeout_ms);
  o.save_deferral.bound = std::chrono::milliseconds(f.save_deferral_ms);
  o.proxy.connections.request_timeout = std::chrono::milliseconds(f.request_timeout_ms);
  o.drain_timeout = std::chrono::seconds(f.drain_s);
  o.stop_timeout = std::chrono::seconds(f.stop_s);
  o.upstream_wait = std::chrono::seconds(f.upstream_wait_s);
  o.save_policy = f.save_policy == "eviction" ? SavePolicy::kEviction : SavePolicy::kTurnEnd;
  o.eviction = f.eviction == "lru" ? Eviction::kLru : Eviction::kPredicted;
  o.return_aware.prefetch = f.prefetch == "on";
  o.return_aware.save_delay = std::chrono::seconds(f.returning_save_delay_s);
  if (!o.store.node.empty() && o.save_policy == SavePolicy::kEviction) {
    return Invalid(
        "--node-id needs --save-policy turn-end: another node restores an agent from its last "
        "saved turn");
  }
  o.proxy.agents_per_key = f.agent_namespace == "per-key";
  if (f.upstream.empty()) {
    o.launch = f.launch;
    if (o.launch->model.empty()) o.launch->model = DefaultModel();
  } else {
    o.upstream.base_url = f.upstream;
    if (o.kv_ram_budget > 0) {
      return Invalid("--kv-ram-budget sizes a llama-server agentkv starts: not with --upstream");
    }
  }
  return Status::Ok();
}

}  // namespace agentkv

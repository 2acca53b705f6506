#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agentkv/version.h"
#include "app/paths.h"
#include "core/prefixes.h"
#include "http/browser_policy.h"
#include "store/store_files.h"

namespace agentkv {

namespace {

std::string EnvName(const std::string& long_name) {
  std::string env = "AGENTKV_";
  for (char c : long_name) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return env;
}

// "--name=value" for each option whose AGENTKV_<NAME> is set and which the
// command line does not give.
std::vector<std::string> EnvironmentArgs(const CLI::App& serve,
                                         const std::vector<std::string>& args) {
  std::vector<std::string> out;
  const auto end = std::find(args.begin(), args.end(), "--");
  for (const CLI::Option* opt : serve.get_options()) {
    if (opt->get_lnames().empty() || opt->get_lnames()[0] == "help") continue;
    const std::string name = opt->get_lnames()[0];
    const bool given = std::any_of(args.begin(), end, [&](const std::string& a) {
      if (a == "--" + name || a.rfind("--" + name + "=", 0) == 0) return true;
      for (const std::string& s : opt->get_snames()) {
        if (a == "-" + s) return true;
      }
      return false;
    });
    // NOLINTNEXTLINE(concurrency-mt-unsafe): parsing runs before any thread starts
    const char* value = std::getenv(EnvName(name).c_str());
    if (given || !value || !*value) continue;
    if (opt->get_expected_max() == 0) {  // a flag
      const std::string v = value;
      if (v == "1" || v == "true" || v == "yes" || v == "on") out.push_back("--" + name);
    } else {
      out.push_back("--" + name + "=" + value);
    }
  }
  return out;
}

// CLI11 reads --config only before the subcommand, and before the
// environment; users write it anywhere, or as AGENTKV_CONFIG.
std::vector<std::string> ConfigFirst(std::vector<std::string> args) {
  const auto end = std::find(args.begin(), args.end(), "--");
  for (auto it = args.begin(); it != end; ++it) {
    if (*it == "--config" && it + 1 != end) {
      std::vector<std::string> moved(it, it + 2);
      args.erase(it, it + 2);
      args.insert(args.begin(), moved.begin(), moved.end());
      break;
    }
    if (it->rfind("--config=", 0) == 0) {
      std::string moved = *it;
      args.erase(it);
      args.insert(args.begin(), moved);
      break;
    }
  }
  const bool given = !args.empty() && args[0].rfind("--config", 0) == 0;
  const char* env = std::getenv("AGENTKV_CONFIG");  // NOLINT(concurrency-mt-unsafe): idem
  if (!given && env && *env) args.insert(args.begin(), std::string("--config=") + env);
  return args;
}

std::vector<std::string> SplitKeys(const std::string& text, char sep) {
  std::vector<std::string> keys;
  std::istringstream in(text);
  for (std::string key; std::getline(in, key, sep);) {
    key.erase(0, key.find_first_not_of(" \t\r"));
    key.erase(key.find_last_not_of(" \t\r") + 1);
    if (!key.empty() && key[0] != '#') keys.push_back(key);
  }
  return keys;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error(ErrorCode::kInvalidArgument, "cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One key from `file` if given, else from the environment variable `env`.
Status LoadSingleKey(const std::string& file, const char* env, std::string* key) {
  if (!file.empty()) {
    Result<std::string> text = ReadFile(file);
    if (!text.ok()) return text.status();
    std::vector<std::string> keys = SplitKeys(text.value(), '\n');
    if (keys.size() != 1) {
      return Status::Error(ErrorCode::kInvalidArgument, file + " must hold exactly one key");
    }
    *key = keys[0];
  } else if (const char* v = env ? std::getenv(env) : nullptr) {  // NOLINT(concurrency-mt-unsafe)
    *key = v;
  }
  return Status::Ok();
}

// Entries "KEY" or "KEY TENANT" (see AuthPolicy::tenants) into `auth`.
// `source` names where they came from, for errors: never the key.
Status TakeApiKeys(const std::vector<std::string>& entries, const std::string& source,
                   AuthPolicy& auth) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::istringstream words(entries[i]);
    std::string key, tenant, extra;
    words >> key >> tenant >> extra;
    if (!extra.empty() || (!tenant.empty() && !Prefixes::ValidTenant(tenant))) {
      return Status::Error(ErrorCode::kInvalidArgument,
                           source + ": entry " + std::to_string(i + 1) +
                               " is not KEY or KEY TENANT (a tenant is 1 to 64 of "
                               "[A-Za-z0-9._-], or @ and a scope as /admin/agents shows it)");
    }
    auth.api_keys.push_back(key);
    auth.tenants.push_back(tenant);
  }
  return Status::Ok();
}

// Keys are never logged: errors name the file or variable, not the content.
Status LoadKeys(const std::string& api_file, const std::string& admin_file,
                const std::string& upstream_file, DaemonOptions& o) {
  if (!api_file.empty()) {
    Result<std::string> text = ReadFile(api_file);
    if (!text.ok()) return text.status();
    if (Status s = TakeApiKeys(SplitKeys(text.value(), '\n'), api_file, o.proxy.auth); !s.ok())
      return s;
    if (o.proxy.auth.api_keys.empty()) {
      return Status::Error(ErrorCode::kInvalidArgument, api_file + " holds no key");
    }
  } else if (const char* env = std::getenv("AGENTKV_API_KEYS")) {  // NOLINT(concurrency-mt-unsafe)
    if (Status s = TakeApiKeys(SplitKeys(env, ','), "AGENTKV_API_KEYS", o.proxy.auth); !s.ok())
      return s;
    // Set but naming no key (","): a mistake, not a wish to run without keys.
    if (*env && o.proxy.auth.api_keys.empty()) {
      return Status::Error(ErrorCode::kInvalidArgument, "AGENTKV_API_KEYS holds no key");
    }
  }
  if (Status s = LoadSingleKey(admin_file, "AGENTKV_ADMIN_KEY", &o.proxy.auth.admin_key); !s.ok())
    return s;
  return LoadSingleKey(upstream_file, nullptr, &o.upstream.api_key);
}

// The config file the arguments (or AGENTKV_CONFIG, which ConfigFirst put
// among them) name, or "".
std::string ConfigPath(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind("--config=", 0) == 0) return args[i].substr(9);
    if (args[i] == "--config" && i > 0) return args[i - 1];  // args are reversed
  }
  return "";
}

// `agentkv status` finds agentkv where `serve` would put it, and its admin
// key where `serve` reads it: a flag or its environment variable first, then
// the config file's [serve] keys.
Status ResolveStatusTarget(const std::string& config, const std::string& url,
                           const std::string& key_file, StatusOptions& so) {
  std::string host = "127.0.0.1", port = "8090", file = key_file;
  if (!config.empty()) {
    std::ifstream in(config);
    if (!in) return Status::Error(ErrorCode::kInvalidArgument, "cannot read " + config);
    for (const CLI::ConfigItem& item : CLI::ConfigTOML().from_config(in)) {
      if (item.parents != std::vector<std::string>{"serve"} || item.inputs.size() != 1) continue;
      if (item.name == "host") host = item.inputs[0];
      if (item.name == "port") port = item.inputs[0];
      if (item.name == "admin-key-file" && file.empty()) file = item.inputs[0];
    }
  }
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::" || host == "[::]") host = "[::1]";
  if (host.find(':') != std::string::npos && host[0] != '[') host = "[" + host + "]";
  so.url = url.empty() ? "http://" + host + ":" + port : url;
  return LoadSingleKey(file, "AGENTKV_ADMIN_KEY", &so.admin_key);
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

int ParseCommandLine(int argc, const char* const* argv, CliSettings* out) {
  CLI::App app{"agentkv: durable per-agent KV memory for llama-server", "agentkv"};
  app.set_version_flag("--version", Version(), "Print agentkv's version and exit");
  app.require_subcommand(1);
  CLI::App* serve = app.add_subcommand(
      "serve", "Serve an OpenAI-compatible API that keeps each agent's KV cache");

  DaemonOptions& o = out->daemon;
  o.memory_dir = DefaultMemoryDir();
  std::string upstream;
  LlamaProcessOptions launch;
  launch.binary = DefaultLlamaServer();
  long long upstream_timeout_s = o.upstream.read_timeout.count();
  long long queue_timeout_ms = o.queue.max_wait.count();
  std::string& log_level = out->log_level;

  serve->add_option("--host", o.proxy.host, "Address to listen on")->capture_default_str();
  serve->add_option("--port", o.proxy.port, "Port to listen on (0: any)")->capture_default_str();
  serve->add_option("--upstream", upstream,
                    "URL of a running llama-server to front (it must use "
                    "--slot-save-path = --memory-dir); default: start one");
  serve->add_option("--model,-m", launch.model,
                    "GGUF model for the llama-server agentkv starts (default: the demo "
                    "model written by scripts/setup.sh)");
  serve->add_option("--llama-server", launch.binary, "llama-server binary to start")
      ->capture_default_str();
  serve->add_option("--slots", launch.slots, "Slots (llama-server -np) when starting it")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  serve
      ->add_option("--kv-ram-budget", o.kv_ram_budget,
                   "Bytes of RAM for the slots' KV: the slot count (or, with --slots, the "
                   "context per slot) follows from the model's measured cost")
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--ctx-per-slot", o.ctx_per_slot,
                   "With --kv-ram-budget: each slot's context; as many slots as fit")
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--memory-dir", o.memory_dir, "Directory of saved agent KV files")
      ->capture_default_str();
  serve
      ->add_option("--node-id", o.store.node,
                   "This node's name ([a-z0-9-], at most 32) when --memory-dir is shared with "
                   "other agentkv nodes (each with its own llama-server and the same model); "
                   "setting it makes the directory shared")
      ->check([](const std::string& v) {
        return StoreFiles::ValidNodeName(v) ? "" : "--node-id: use 1 to 32 of [a-z0-9-]";
      });
  serve->add_option("--max-body-bytes", o.proxy.max_body_bytes, "Largest request body")
      ->capture_default_str();
  serve
      ->add_option("--max-passthrough-body-bytes", o.proxy.max_passthrough_body_bytes,
                   "Largest request body to a route passed through to llama-server "
                   "(/tokenize, /apply-template...)")
      ->capture_default_str();
  serve
      ->add_option("--max-json-values", o.proxy.max_json_values,
                   "Most values (object keys included) in a JSON request body")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  serve
      ->add_option("--max-connections", o.proxy.connections.max_connections,
                   "Client connections served at once; more get 503 (control routes excepted)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  serve
      ->add_option("--max-connections-per-client", o.proxy.connections.max_connections_per_client,
                   "Connections from one client address; more get 503")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  long long request_timeout_ms = o.proxy.connections.request_timeout.count();
  serve
      ->add_option("--request-timeout-ms", request_timeout_ms,
                   "Longest time a client may take to send a request's head and body, then 408")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-queue", o.queue.max_waiting,
                   "Requests that may wait for a slot; more get 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--max-queue-per-agent", o.queue.max_waiting_per_agent,
                   "Of the waiting requests, how many may be one agent's; more get 503")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-new-agents-per-minute", o.proxy.max_new_agents_per_minute,
                   "Requests for agents agentkv does not know, per API key and minute; more get "
                   "429 (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--max-queue-per-key", o.queue.max_waiting_per_key,
                   "Of the waiting requests, how many may be one API key's (tenant's); more "
                   "get 503 (default: three quarters of --max-queue)")
      ->check(CLI::PositiveNumber);
  serve->add_option("--queue-timeout-ms", queue_timeout_ms, "Longest wait for a slot before 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--upstream-timeout", upstream_timeout_s,
                   "Seconds to wait for llama-server to answer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  std::string save_policy = "turn-end";
  serve
      ->add_option("--save-policy", save_policy,
                   "When resident agents are saved: turn-end (after every turn, off the "
                   "request path) or eviction (only when their slot is needed)")
      ->capture_default_str()
      ->check(CLI::IsMember({"turn-end", "eviction"}));
  std::string eviction = "predicted";
  serve
      ->add_option("--eviction", eviction,
                   "Which idle agent gives up its slot: predicted (done first, then those "
                   "waiting for a person, least recently used first; agents in a tool call "
                   "last) or lru (least recently used)")
      ->capture_default_str()
      ->check(CLI::IsMember({"predicted", "lru"}));
  std::string prefetch = o.return_aware.prefetch ? "on" : "off";
  serve
      ->add_option("--prefetch", prefetch,
                   "Restore an evicted agent expected back (in a tool call) into a slot "
                   "before its request, when a slot is free or holds an agent expected "
                   "later, and read its file into the page cache when none is: on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  long long returning_save_delay_s =
      std::chrono::duration_cast<std::chrono::seconds>(o.return_aware.save_delay).count();
  serve
      ->add_option("--returning-save-delay-s", returning_save_delay_s,
                   "Turn-end policy: an agent expected back within this many seconds (a "
                   "tool call) is saved once its oldest unsaved turn is this old, not after "
                   "every turn; a crash costs at most that much of its turns, prefilled "
                   "again (0: save every turn at its end)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  long long save_deferral_ms = o.save_deferral.bound.count();
  serve
      ->add_option("--save-deferral-ms", save_deferral_ms,
                   "Longest a turn-end save waits while requests wait for their first token "
                   "(0: saves never wait)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--disk-budget-bytes", o.store.budget_bytes,
                   "Most bytes of saved memory; least recently used agents' files go "
                   "first (0: no budget)")
      ->capture_default_str();
  serve
      ->add_option("--min-free-bytes", o.store.min_free_bytes,
                   "Skip a save that would leave less free disk than this")
      ->capture_default_str();
  serve->add_option("--max-pins", o.max_pins, "Agents that may be pinned at once (< slots)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--prefix-min-tokens", o.prefix_min_tokens,
                   "New agents start from a saved snapshot of a prompt prefix at least this "
                   "long that two agents of one API key sent (0: never)")
      ->capture_default_str();
  long long upstream_wait_s = o.upstream_wait.count();
  serve
      ->add_option("--upstream-wait", upstream_wait_s,
                   "Seconds a request waits for a llama-server that is down, then 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--max-restarts", o.max_restarts,
                   "Restarts of a crashed llama-server in a row before giving up")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  long long drain_s = o.drain_timeout.count();
  serve
      ->add_option("--drain-timeout", drain_s,
                   "Seconds requests in flight may take to finish on SIGTERM")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  long long stop_s = o.stop_timeout.count();
  serve
      ->add_option("--stop-timeout", stop_s,
                   "Seconds a stop may take in all (drain, saves, llama-server); keep it "
                   "below the service manager's own limit")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--quarantine-max-files", o.store.quarantine_max_files,
                   "Files kept in the memory directory's quarantine/, oldest deleted first")
      ->capture_default_str();
  serve
      ->add_option("--quarantine-max-bytes", o.store.quarantine_max_bytes,
                   "Bytes kept in quarantine/, oldest deleted first")
      ->capture_default_str();
  serve
      ->add_option("--cache-type-k", o.kv.cache_type_k,
                   "With --upstream: the K cache type llama-server runs with (part of "
                   "every file's fingerprint)")
      ->capture_default_str();
  serve
      ->add_option("--cache-type-v", o.kv.cache_type_v,
                   "With --upstream: the V cache type llama-server runs with")
      ->capture_default_str();
  serve->add_flag("--swa-full", o.kv.swa_full,
                  "With --upstream: llama-server runs with --swa-full");
  serve->add_option("--llama-log", launch.log_file,
                    "File for the started llama-server's output (default: stderr)");
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  serve
      ->add_option("--log-format", out->log_format,
                   "text, or json (one object a line, for journald)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  std::string api_key_file, admin_key_file, upstream_key_file;
  serve
      ->add_option("--api-key-file", api_key_file,
                   "File of API keys, one a line: clients must send one as a Bearer token "
                   "(also AGENTKV_API_KEYS, comma-separated)")
      ->check(CLI::ExistingFile);
  serve
      ->add_option("--admin-key-file", admin_key_file,
                   "File holding the key for /admin/ (also AGENTKV_ADMIN_KEY)")
      ->check(CLI::ExistingFile);
  serve
      ->add_option("--upstream-key-file", upstream_key_file,
                   "File holding llama-server's own --api-key: needed with --upstream if it "
                   "has one; a llama-server agentkv starts gets a random key otherwise")
      ->check(CLI::ExistingFile);
  std::string agent_namespace = "per-key";
  serve
      ->add_option("--agent-namespace", agent_namespace,
                   "With API keys: per-key (each key has its own agents: one id under two keys "
                   "is two agents) or shared (one namespace for all keys)")
      ->capture_default_str()
      ->check(CLI::IsMember({"per-key", "shared"}));
  serve->add_flag("--metrics-need-key", o.proxy.auth.metrics_need_key,
                  "Require an API key for /metrics");
  serve->add_flag("--health-needs-key", o.proxy.auth.health_needs_key,
                  "Require an API key for /healthz and /readyz");
  bool allow_no_auth = false;
  serve->add_flag("--allow-no-auth", allow_no_auth,
                  "Serve a non-loopback --host without API keys (anyone who reaches it can "
                  "use every agent)");
  std::vector<std::string> allowed_hosts;
  serve
      ->add_option("--allowed-hosts", allowed_hosts,
                   "Host names clients reach agentkv by, comma-separated, besides localhost, "
                   "127.0.0.1, [::1] and --host; * accepts any (no DNS-rebinding check)")
      ->delimiter(',')
      ->allow_extra_args(false);
  serve
      ->add_option("--cors-origins", o.proxy.browser.cors_origins,
                   "Origins (https://app.example:3000) whose web pages may call agentkv, "
                   "comma-separated; * for any. Default: none")
      ->delimiter(',')
      ->allow_extra_args(false);
  serve->add_option("llama_args", launch.extra_args,
                    "Arguments after -- go to the llama-server agentkv starts");
  serve->footer(
      "Every option can also be set as AGENTKV_<NAME> (AGENTKV_PORT for --port) or in a TOML\n"
      "file given with --config (AGENTKV_CONFIG), keys under [serve]; flags win over the\n"
      "environment, which wins over the file. See configs/agentkv.toml.\n\n"
      "Example: agentkv serve --model m.gguf --slots 4 -- --ctx-size 16384 --threads 8");

  CLI::App* status = app.add_subcommand(
      "status", "Show a running agentkv's slots, agents, totals and recent requests");
  StatusOptions& so = out->status;
  std::string status_url, status_key_file;
  double watch_s = 0;
  status
      ->add_option("--url", status_url,
                   "agentkv's address (default: host and port from the config file, else "
                   "http://127.0.0.1:8090)")
      ->envname("AGENTKV_URL");
  status
      ->add_option("--admin-key-file", status_key_file,
                   "File holding the admin key (also AGENTKV_ADMIN_KEY, or the config file's)")
      ->check(CLI::ExistingFile)
      ->envname("AGENTKV_ADMIN_KEY_FILE");
  status->add_flag("--json", so.json,
                   "Print GET /admin/status as JSON (one line per refresh with --watch)");
  status->add_option("--watch", watch_s, "Refresh every S seconds until interrupted")
      ->check(CLI::PositiveNumber);
  status->add_option("--count", so.count, "With --watch: stop after N refreshes")
      ->check(CLI::NonNegativeNumber);
  status->add_option("--agents", so.agents, "Agents listed, most recently used first")
      ->capture_default_str()
      ->check(CLI::Range(0, 500));
  status->add_option("--recent", so.recent, "Recent requests listed")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));

  app.set_config("--config", "", "TOML config file: the long option names as keys under [serve]");

  // Flags > environment > file: CLI11 applies a config file before the
  // environment, so environment values are passed as if they were flags,
  // for the options the real flags leave unset.
  std::vector<std::string> args = ConfigFirst({argv + 1, argv + argc});
  const auto command = std::find_if(
      args.begin(), args.end(), [](const std::string& a) { return a == "serve" || a == "status"; });
  if (command == args.end() || *command == "serve") {
    std::vector<std::string> env_args = EnvironmentArgs(*serve, args);
    const auto sep = std::find(args.begin(), args.end(), "--");
    args.insert(sep, env_args.begin(), env_args.end());
  }
  std::reverse(args.begin(), args.end());            // CLI11 takes them last first
  const std::string config_path = ConfigPath(args);  // before parse() consumes them
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (status->parsed()) {
    out->command = CliSettings::Command::kStatus;
    so.watch = std::chrono::milliseconds(static_cast<long long>(watch_s * 1000));
    if (Status s = ResolveStatusTarget(config_path, status_url, status_key_file, so); !s.ok()) {
      std::cerr << s.message() << "\n";
      return 2;
    }
    return -1;
  }
  Status keys = LoadKeys(api_key_file, admin_key_file, upstream_key_file, o);
  if (!keys.ok()) {
    std::cerr << keys.message() << "\n";
    return 2;
  }
  if (Status s = SetAllowedHosts(allowed_hosts, o.proxy); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  if (!IsLoopback(o.proxy.host) && o.proxy.auth.api_keys.empty() && !allow_no_auth) {
    std::cerr << "--host " << o.proxy.host
              << " is reachable from other machines, and no API keys are set: anyone who "
                 "reaches it could use every agent and its memory. Set keys (--api-key-file "
                 "or AGENTKV_API_KEYS), or pass --allow-no-auth to serve without them.\n";
    return 2;
  }
  o.upstream.read_timeout = std::chrono::seconds(upstream_timeout_s);
  o.queue.max_wait = std::chrono::milliseconds(queue_timeout_ms);
  o.save_deferral.bound = std::chrono::milliseconds(save_deferral_ms);
  o.proxy.connections.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  o.drain_timeout = std::chrono::seconds(drain_s);
  o.stop_timeout = std::chrono::seconds(stop_s);
  o.upstream_wait = std::chrono::seconds(upstream_wait_s);
  o.save_policy = save_policy == "eviction" ? SavePolicy::kEviction : SavePolicy::kTurnEnd;
  o.eviction = eviction == "lru" ? Eviction::kLru : Eviction::kPredicted;
  o.return_aware.prefetch = prefetch == "on";
  o.return_aware.save_delay = std::chrono::seconds(returning_save_delay_s);
  if (!o.store.node.empty() && o.save_policy == SavePolicy::kEviction) {
    std::cerr << "--node-id needs --save-policy turn-end: another node restores an agent from "
                 "its last saved turn\n";
    return 2;
  }
  o.proxy.agents_per_key = agent_namespace == "per-key";
  if (upstream.empty()) {
    if (launch.model.empty()) launch.model = DefaultModel();
    o.launch = launch;
  } else {
    o.upstream.base_url = upstream;
    if (o.kv_ram_budget > 0) {
      std::cerr << "--kv-ram-budget sizes a llama-server agentkv starts: not with --upstream\n";
      return 2;
    }
  }
  return -1;
}

}  // namespace agentkv

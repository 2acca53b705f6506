// agentkv: durable per-agent KV memory in front of llama-server.
#include <csignal>
#include <iostream>
#include <thread>

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "agentkv/daemon.h"
#include "paths.h"

namespace {

// Blocks until one of `set` arrives. Signals are blocked in every thread
// (the mask is inherited), so only this sigwait sees them.
int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace agentkv;
  CLI::App app{"agentkv: durable per-agent KV memory for llama-server"};
  app.require_subcommand(1);
  CLI::App* serve = app.add_subcommand(
      "serve", "Serve an OpenAI-compatible API that keeps each agent's KV cache");

  DaemonOptions o;
  o.memory_dir = DefaultMemoryDir();
  std::string upstream;
  LlamaProcessOptions launch;
  launch.binary = DefaultLlamaServer();
  long long upstream_timeout_s = o.upstream.read_timeout.count();
  long long queue_timeout_ms = o.queue.max_wait.count();
  std::string log_level = "info";

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
  serve->add_option("--memory-dir", o.memory_dir, "Directory of saved agent KV files")
      ->capture_default_str();
  serve->add_option("--max-body-bytes", o.proxy.max_body_bytes, "Largest request body")
      ->capture_default_str();
  serve->add_option("--max-queue", o.queue.max_waiting,
                    "Requests that may wait for a slot; more get 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--queue-timeout-ms", queue_timeout_ms,
                    "Longest wait for a slot before 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--upstream-timeout", upstream_timeout_s,
                    "Seconds to wait for llama-server to answer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  std::string save_policy = "turn-end";
  serve->add_option("--save-policy", save_policy,
                    "When resident agents are saved: turn-end (after every turn, off the "
                    "request path) or eviction (only when their slot is needed)")
      ->capture_default_str()
      ->check(CLI::IsMember({"turn-end", "eviction"}));
  serve->add_option("--disk-budget-bytes", o.store.budget_bytes,
                    "Most bytes of saved memory; least recently used agents' files go "
                    "first (0: no budget)")
      ->capture_default_str();
  serve->add_option("--min-free-bytes", o.store.min_free_bytes,
                    "Skip a save that would leave less free disk than this")
      ->capture_default_str();
  serve->add_option("--max-pins", o.max_pins, "Agents that may be pinned at once (< slots)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  long long drain_s = o.drain_timeout.count();
  serve->add_option("--drain-timeout", drain_s,
                    "Seconds requests in flight may take to finish on SIGTERM")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--cache-type-k", o.kv.cache_type_k,
                    "With --upstream: the K cache type llama-server runs with (part of "
                    "every file's fingerprint)")
      ->capture_default_str();
  serve->add_option("--cache-type-v", o.kv.cache_type_v,
                    "With --upstream: the V cache type llama-server runs with")
      ->capture_default_str();
  serve->add_flag("--swa-full", o.kv.swa_full, "With --upstream: llama-server runs with --swa-full");
  serve->add_option("--llama-log", launch.log_file,
                    "File for the started llama-server's output (default: stderr)");
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  serve->add_option("llama_args", launch.extra_args,
                    "Arguments after -- go to the llama-server agentkv starts");
  serve->footer(
      "Example: agentkv serve --model m.gguf --slots 4 -- --ctx-size 16384 --threads 8");

  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  o.upstream.read_timeout = std::chrono::seconds(upstream_timeout_s);
  o.queue.max_wait = std::chrono::milliseconds(queue_timeout_ms);
  o.drain_timeout = std::chrono::seconds(drain_s);
  o.save_policy = save_policy == "eviction" ? SavePolicy::kEviction : SavePolicy::kTurnEnd;
  if (upstream.empty()) {
    if (launch.model.empty()) launch.model = DefaultModel();
    o.launch = launch;
  } else {
    o.upstream.base_url = upstream;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the stop below has finished
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Result<std::unique_ptr<Daemon>> daemon = Daemon::Start(o);
  if (!daemon.ok()) {
    spdlog::error("{}", daemon.status().message());
    return 1;
  }
  int sig = 0;
  while ((sig = WaitForSignal(signals)) == SIGUSR1) {
  }
  spdlog::info("received signal {}, shutting down (again to exit at once)", sig);
  std::thread stopper([&] {
    daemon.value()->Stop();
    ::kill(::getpid(), SIGUSR1);
  });
  if (WaitForSignal(signals) != SIGUSR1) {
    spdlog::warn("second signal: exiting without waiting for requests in flight");
    std::_Exit(130);  // llama-server follows: it dies with its parent
  }
  stopper.join();
  return 0;
}

#pragma once
// `agentkv serve`'s options: declared once on CLI11 (each is also
// AGENTKV_<NAME> and a [serve] key of the config file: cli.h), then checked
// together and written into DaemonOptions.

#include <string>
#include <vector>

#include "agentkv/status.h"
#include "app/cli.h"
#include "upstream/llama_process.h"

namespace CLI {
class App;
}  // namespace CLI

namespace agentkv {

// What the options hold until they are checked together: durations in the
// units their flags name, choices as their words, key files by name.
struct ServeFlags {
  std::string upstream;  // empty: start llama-server
  LlamaProcessOptions launch;
  long long upstream_timeout_s = 0;
  long long queue_timeout_ms = 0;
  long long request_timeout_ms = 0;
  long long save_deferral_ms = 0;
  long long returning_save_delay_s = 0;
  long long upstream_wait_s = 0;
  long long drain_s = 0;
  long long stop_s = 0;
  std::string save_policy = "turn-end";
  std::string eviction = "predicted";
  std::string prefetch;
  std::string agent_namespace = "per-key";
  std::string api_key_file, admin_key_file, upstream_key_file;
  bool allow_no_auth = false;
  std::vector<std::string> allowed_hosts;
};

// Declares serve's options on `serve`, their defaults those of
// out.daemon; parsing writes into `out` and `flags`.
void DeclareServeFlags(CLI::App& serve, CliSettings& out, ServeFlags& flags);

// After parsing: reads the keys, checks the options against each other and
// writes them into `o`. An error's message is for the user, as it is.
Status ApplyServeFlags(const ServeFlags& flags, DaemonOptions& o);

}  // namespace agentkv

#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agentkv/version.h"
#include "app/key_files.h"
#include "app/serve_flags.h"

namespace agentkv {

namespace {

// What `agentkv status` takes until it is resolved (ResolveStatusTarget).
struct StatusFlags {
  std::string url, key_file;
  double watch_s = 0;
};

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

// `agentkv status`'s options, into `so` and `f`.
CLI::App* DeclareStatus(CLI::App& app, StatusOptions& so, StatusFlags& f) {
  CLI::App* status = app.add_subcommand(
      "status", "Show a running agentkv's slots, agents, totals and recent requests");
  status
      ->add_option("--url", f.url,
                   "agentkv's address (default: host and port from the config file, else "
                   "http://127.0.0.1:8090)")
      ->envname("AGENTKV_URL");
  status
      ->add_option("--admin-key-file", f.key_file,
                   "File holding the admin key (also AGENTKV_ADMIN_KEY, or the config file's)")
      ->check(CLI::ExistingFile)
      ->envname("AGENTKV_ADMIN_KEY_FILE");
  status->add_flag("--json", so.json,
                   "Print GET /admin/status as JSON (one line per refresh with --watch)");
  status->add_option("--watch", f.watch_s, "Refresh every S seconds until interrupted")
      ->check(CLI::PositiveNumber);
  status->add_option("--count", so.count, "With --watch: stop after N refreshes")
      ->check(CLI::NonNegativeNumber);
  status->add_option("--agents", so.agents, "Agents listed, most recently used first")
      ->capture_default_str()
      ->check(CLI::Range(0, 500));
  status->add_option("--recent", so.recent, "Recent requests listed")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  return status;
}

}  // namespace

int ParseCommandLine(int argc, const char* const* argv, CliSettings* out) {
  CLI::App app{"agentkv: durable per-agent KV memory for llama-server", "agentkv"};
  app.set_version_flag("--version", Version(), "Print agentkv's version and exit");
  app.require_subcommand(1);
  CLI::App* serve = app.add_subcommand(
      "serve", "Serve an OpenAI-compatible API that keeps each agent's KV cache");

  ServeFlags flags;
  DeclareServeFlags(*serve, *out, flags);
  StatusFlags status_flags;
  CLI::App* status = DeclareStatus(app, out->status, status_flags);

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
    StatusOptions& so = out->status;
    so.watch = std::chrono::milliseconds(static_cast<long long>(status_flags.watch_s * 1000));
    if (Status s = ResolveStatusTarget(config_path, status_flags.url, status_flags.key_file, so);
        !s.ok()) {
      std::cerr << s.message() << "\n";
      return 2;
    }
    return -1;
  }
  if (Status s = ApplyServeFlags(flags, out->daemon); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  return -1;
}

}  // namespace agentkv

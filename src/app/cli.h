#pragma once
// The command line: `agentkv serve [options] [-- llama-server args]`, and
// `agentkv status [options]` (status_command.h), which reads the admin key
// from the same places as serve (--admin-key-file, AGENTKV_ADMIN_KEY_FILE,
// AGENTKV_ADMIN_KEY, the config file's admin-key-file under [serve]) and
// the address from --url, AGENTKV_URL or the config file's host and port.
// Each option can also come from the environment (AGENTKV_<NAME>, e.g.
// AGENTKV_PORT for --port) or from a TOML config file (--config FILE, keys
// under [serve]). Precedence: flags > environment > file > defaults.
// API keys come from files (--api-key-file, --admin-key-file) or from
// AGENTKV_API_KEYS (comma-separated) and AGENTKV_ADMIN_KEY, never from flags.

#include <string>
#include <vector>

#include "app/daemon.h"
#include "app/status_command.h"

namespace agentkv {

struct CliSettings {
  enum class Command { kServe, kStatus };
  Command command = Command::kServe;
  DaemonOptions daemon;  // serve
  StatusOptions status;  // status
  std::string log_level = "info";
  std::string log_format = "text";  // or json
};

// Parses argv (with `environ` for the environment). Returns -1 and fills
// *out to go on; otherwise an exit code, after printing help or an error.
int ParseCommandLine(int argc, const char* const* argv, CliSettings* out);

}  // namespace agentkv

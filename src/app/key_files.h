#pragma once
// API keys and the admin key, read from files or the environment for
// `agentkv serve` and `agentkv status` alike. Keys are never logged: errors
// name the file or variable, not the content.

#include <string>

#include "agentkv/status.h"
#include "app/daemon.h"

namespace agentkv {

// One key from `file` if given, else from the environment variable `env`
// (null: none); a file must hold exactly one key (blank lines and lines
// starting with # aside).
Status LoadSingleKey(const std::string& file, const char* env, std::string* key);

// Into o.proxy.auth and o.upstream.api_key: the API keys of `api_file`
// (lines "KEY" or "KEY TENANT") or of AGENTKV_API_KEYS (comma-separated),
// the admin key of `admin_file` or AGENTKV_ADMIN_KEY, and llama-server's
// own key of `upstream_file`. Empty file names: not given.
Status LoadKeys(const std::string& api_file, const std::string& admin_file,
                const std::string& upstream_file, DaemonOptions& o);

}  // namespace agentkv

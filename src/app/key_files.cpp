#include "app/key_files.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/prefixes.h"

namespace agentkv {

namespace {

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

}  // namespace

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

}  // namespace agentkv

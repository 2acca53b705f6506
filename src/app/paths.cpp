#include "app/paths.h"

#include <cstdlib>
#include <sstream>
#include <string>

namespace agentkv {

namespace fs = std::filesystem;

namespace {
fs::path EnvPath(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): nothing calls setenv
  return v && *v ? fs::path(v) : fs::path();
}
fs::path Home() {
  fs::path home = EnvPath("HOME");
  return home.empty() ? fs::path("/tmp") : home;
}
}  // namespace

fs::path DefaultCacheDir() {
  if (fs::path p = EnvPath("AGENTKV_CACHE_DIR"); !p.empty()) return p;
  if (fs::path p = EnvPath("XDG_CACHE_HOME"); !p.empty()) return p / "agentkv";
  return Home() / ".cache" / "agentkv";
}

fs::path DefaultMemoryDir() {
  if (fs::path p = EnvPath("XDG_STATE_HOME"); !p.empty()) return p / "agentkv" / "memory";
  return Home() / ".local" / "state" / "agentkv" / "memory";
}

fs::path DefaultLlamaServer() {
  fs::path cached = DefaultCacheDir() / "bin" / "llama-server";
  if (fs::exists(cached)) return cached;
  const fs::path path_env = EnvPath("PATH");
  std::istringstream dirs(path_env.string());
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (!dir.empty() && fs::exists(fs::path(dir) / "llama-server")) {
      return fs::path(dir) / "llama-server";
    }
  }
  return cached;
}

fs::path DefaultModel() { return DefaultCacheDir() / "models" / "demo.gguf"; }

}  // namespace agentkv

#pragma once
// Default locations, shared by scripts/setup.sh and the daemon:
//   cache:  $AGENTKV_CACHE_DIR, else $XDG_CACHE_HOME/agentkv, else ~/.cache/agentkv
//           (holds bin/llama-server and models/demo.gguf written by setup)
//   memory: $XDG_STATE_HOME/agentkv/memory, else ~/.local/state/agentkv/memory

#include <filesystem>

namespace agentkv {

std::filesystem::path DefaultCacheDir();
std::filesystem::path DefaultMemoryDir();
// <cache>/bin/llama-server if present, else the first llama-server on PATH,
// else the cache path (so the error names where setup would have put it).
std::filesystem::path DefaultLlamaServer();
std::filesystem::path DefaultModel();

}  // namespace agentkv

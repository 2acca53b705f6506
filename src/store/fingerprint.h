#pragma once
// What an agent's KV file is only valid for: the model file, the context per
// slot, the KV cache types, the llama.cpp build and --swa-full. Pure
// functions, thread-safe.

#include <filesystem>
#include <string>

#include "agentkv/status.h"

namespace agentkv {

// What a KV file is only valid for.
struct Fingerprint {
  std::string model;         // model file identity: size and head/tail checksum
  long long n_ctx_slot = 0;  // context per slot
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  std::string build;  // llama.cpp build, from llama-server's /props
  bool swa_full = false;

  // A stable short string; equal digests mean compatible files.
  std::string Digest() const;
};

// Identity of a model file without reading all of it: its size and a
// checksum of its first and last MiB. Returns kIo if it cannot be read.
Result<std::string> ModelIdentity(const std::filesystem::path& model);

}  // namespace agentkv

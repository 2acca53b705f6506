#pragma once
// What a GGUF model file says about how its KV can be kept: read from the
// file's metadata (llama-server's /props does not report it). Pure function
// over a file; thread-safe.

#include <filesystem>
#include <string>

#include "agentkv/status.h"

namespace agentkv {

struct ModelInfo {
  std::string arch;              // general.architecture
  long long sliding_window = 0;  // <arch>.attention.sliding_window; 0: none
  bool recurrent = false;        // has recurrent state (<arch>.ssm.* or .shortconv.* keys)
  long long expert_count = 0;    // <arch>.expert_count; 0: dense
};

// Reads the metadata of the GGUF file at `path` (not its tensors). Returns
// kInvalidArgument if it is not a GGUF file of a version agentkv reads (2
// or 3) or its metadata is malformed, kIo if it cannot be read.
Result<ModelInfo> ReadModelInfo(const std::filesystem::path& path);

}  // namespace agentkv

#pragma once
// How agentkv can keep the KV of the model llama-server serves. Sliding-
// window models keep only the window unless llama-server runs with
// --swa-full, and then a restore reports success and reuses nothing: agentkv
// adds --swa-full to a llama-server it starts, and serves every request
// stateless in front of one started without it. Pure logic; thread-safe.

#include <string>
#include <vector>

#include "upstream/model_info.h"

namespace agentkv {

struct ServingMode {
  ModelInfo model;              // arch "" if the model file could not be read
  bool swa_full = false;        // llama-server keeps the whole context of SWA layers
  bool swa_full_added = false;  // agentkv added --swa-full itself
  bool persist = true;          // false: every request is served stateless
  std::string why_stateless;
  double kv_bytes_per_token = 0;  // measured for --kv-ram-budget, else 0
  double kv_bytes_per_slot = 0;
};

// `swa_full`: what llama-server runs with. `launch_args`: the arguments of a
// llama-server agentkv is about to start (a sliding-window model gets
// --swa-full appended), or null when agentkv fronts a running one.
ServingMode DecideServing(const ModelInfo& model, bool swa_full,
                          std::vector<std::string>* launch_args);

}  // namespace agentkv

#include "upstream/serving_mode.h"

namespace agentkv {

ServingMode DecideServing(const ModelInfo& model, bool swa_full,
                          std::vector<std::string>* launch_args) {
  ServingMode mode;
  mode.model = model;
  mode.swa_full = swa_full;
  if (model.sliding_window <= 0 || swa_full) return mode;
  if (launch_args) {
    launch_args->push_back("--swa-full");
    mode.swa_full = mode.swa_full_added = true;
    return mode;
  }
  mode.persist = false;
  mode.why_stateless = "the model (" + model.arch + ") uses a sliding window of " +
                       std::to_string(model.sliding_window) +
                       " tokens and llama-server was not started with --swa-full: its slots "
                       "cannot be restored (a restore would reuse nothing). Start llama-server "
                       "with --swa-full and give agentkv --swa-full too";
  return mode;
}

}  // namespace agentkv

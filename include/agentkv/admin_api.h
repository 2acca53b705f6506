#pragma once
// The lifecycle API on agents' memory, independent of HTTP: the http front
// maps routes under /admin/ here and errors to status codes.
//
//   GET    /admin/agents               list (resident or not, tokens, bytes, last used)
//   GET    /admin/agents/{id}          one agent
//   DELETE /admin/agents/{id}          slot erased, files removed: the memory is gone
//   POST   /admin/agents/{id}/warm     restore it now, ahead of its next request
//   POST   /admin/agents/{id}/fork     body {"into": "<new id>"}: the new agent
//                                      starts from a copy of this one's memory
//   POST   /admin/agents/{id}/pin      never evicted while pinned (bounded count)
//   DELETE /admin/agents/{id}/pin
//   GET    /admin/stats                counters, and how the model is served
// Thread-safe.

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "agentkv/placer.h"
#include "agentkv/serving_mode.h"

namespace agentkv {

class AdminApi {
 public:
  AdminApi(SlotPool& pool, Placer& placer, Store& store, ServingMode serving = {})
      : pool_(pool), placer_(placer), store_(store), serving_(std::move(serving)) {}

  // `path` starts with /admin/. Returns the JSON answer, or kNotFound,
  // kInvalidArgument, kBusy... May block on the agent's requests in flight.
  Result<nlohmann::json> Handle(const std::string& method, const std::string& path,
                                const std::string& body);

 private:
  nlohmann::json Describe(const AgentId& agent) const;

  SlotPool& pool_;
  Placer& placer_;
  Store& store_;
  const ServingMode serving_;
};

}  // namespace agentkv

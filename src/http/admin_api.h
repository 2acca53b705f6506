#pragma once
// The lifecycle API on agents' memory, independent of HTTP: the route
// table (routes.cpp) names the action, the http front validates the agent id
// and maps errors to status codes.
//
//   GET    /admin/agents               list (resident or not, tokens, bytes, last used),
//                                      by id, ?offset=&limit= (50; at most 500)&filter=
//   GET    /admin/agents/{id}          one agent
//   DELETE /admin/agents/{id}          slot erased, files removed: the memory is gone
//   POST   /admin/agents/{id}/warm     restore it now, ahead of its next request
//   POST   /admin/agents/{id}/fork     body {"into": "<new id>"}: the new agent
//                                      starts from a copy of this one's memory
//   POST   /admin/agents/{id}/pin      never evicted while pinned (bounded count)
//   DELETE /admin/agents/{id}/pin
//   GET    /admin/prefixes             prefix snapshots (scope, tokens, bytes, last used)
//   DELETE /admin/prefixes/{id}        one snapshot's files removed
//   GET    /admin/stats                counters, and how the model is served
//   GET    /admin/status               what the status page shows (status_report.h)
// Thread-safe.

#include <atomic>
#include <cstddef>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>

#include "core/memory_ops.h"
#include "core/placer.h"
#include "http/routes.h"
#include "http/status_report.h"
#include "upstream/serving_mode.h"

namespace agentkv {

// One request's claim of an agent's scope (AdminApi::Claim), ended when
// this is reset or destroyed. Move-only.
class ClaimHold {
 public:
  ClaimHold() = default;
  explicit ClaimHold(std::function<void()> release) : release_(std::move(release)) {}
  ClaimHold(ClaimHold&& o) noexcept : release_(std::exchange(o.release_, nullptr)) {}
  ClaimHold& operator=(ClaimHold&& o) noexcept {
    Reset();
    release_ = std::exchange(o.release_, nullptr);
    return *this;
  }
  ClaimHold(const ClaimHold&) = delete;
  ClaimHold& operator=(const ClaimHold&) = delete;
  ~ClaimHold() { Reset(); }
  void Reset() {
    if (release_) std::exchange(release_, nullptr)();
  }

 private:
  std::function<void()> release_;
};

class AdminApi {
 public:
  // `status` answers kStatus (kNotFound without one) and forgets deleted
  // agents' traffic; it must outlive this.
  AdminApi(SlotPool& pool, Placer& placer, MemoryOps& memory, Store& store, Metrics& metrics,
           ServingMode serving = {}, StatusReport* status = nullptr)
      : pool_(pool),
        placer_(placer),
        memory_(memory),
        store_(store),
        metrics_(metrics),
        serving_(std::move(serving)),
        status_(status) {}

  // `agent` is the route's {id}, required by every action on one agent or
  // prefix; `query` is the request's query string (read by kStatus only).
  // Returns the JSON answer, or kNotFound, kInvalidArgument, kConflict,
  // kBusy... May block on the agent's requests in flight.
  Result<nlohmann::json> Handle(AdminAction action, const std::optional<AgentId>& agent,
                                const std::string& body, const std::string& query = "");

  // The inference path: `agent`'s requests come with the API key of `scope`
  // (see Prefixes::ScopeOf). Recorded with its memory; held for one request
  // until the hold ends (after its turn is recorded: Store::Unclaim). Now
  // and then, claims of agents that hold nothing any more are swept.
  ClaimHold Claim(const AgentId& agent, const std::string& scope);
  // Resident or saved (in a shared directory, by any node).
  bool Known(const AgentId& agent) const;
  // kForbidden if `agent` belongs to another scope than `scope` (its memory's
  // or its claim's; see Store::ScopeOf): in one namespace shared by all
  // keys, an agent is its first key's. Memory saved before scopes were
  // recorded has none, and is open to a daemon without keys only.
  Status CheckOwner(const AgentId& agent, const std::string& scope) const;
  // Starts new agent `child` from a copy of `parent`'s memory, for a request
  // under `scope`. Nothing if `child` exists already (resident or saved).
  // kNotFound if agentkv knows no `parent`, kForbidden if the parent's
  // requests came with another API key; else as Fork.
  Status Spawn(const AgentId& child, const AgentId& parent, const std::string& scope);

 private:
  nlohmann::json Stats() const;
  // By id, `limit` from `offset`, those whose id contains `filter`.
  nlohmann::json ListAgents(std::size_t offset, std::size_t limit, const std::string& filter) const;
  nlohmann::json ListPrefixes() const;
  Result<nlohmann::json> DeletePrefix(const AgentId& listed);
  Result<nlohmann::json> HandleAgent(AdminAction action, const AgentId& id,
                                     const std::string& body);
  Result<nlohmann::json> Warm(const AgentId& id);
  Result<nlohmann::json> Fork(const AgentId& id, const std::string& body);
  nlohmann::json Describe(const AgentId& agent) const;

  SlotPool& pool_;
  Placer& placer_;
  MemoryOps& memory_;
  Store& store_;
  Metrics& metrics_;
  const ServingMode serving_;
  StatusReport* const status_;
  // Claims after the last sweep: the next comes at twice as many (plus a
  // margin), so sweeping costs O(1) a request.
  std::atomic<std::size_t> claims_swept_at_{0};
};

}  // namespace agentkv

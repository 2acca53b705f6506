#pragma once
// GET /admin/status: in one answer, what the status page (/ui) and
// `agentkv status` show: totals, every slot, one page of the agents (sorted
// and filtered here, so that a page of 1,000 agents stays small), time to
// first token by placement over the last minutes, and the recent requests.
//
//   {"now": <unix ms>, "upstream_up": bool, "persistence": bool,
//    "totals": {...counters and gauges, "disk_budget_bytes": 0 if none...},
//    "slots": [{"slot", "state", "agent", "tokens", "dirty", "pinned", "since", "for_ms"}],
//    "agents": {"total", "offset", "limit", "sort", "filter",
//               "items": [{"id", "resident", "slot", "pinned", "dirty", "tokens",
//                          "saved_bytes", "last_used", "requests", "placements",
//                          "tokens_reused", "tokens_prefilled", "reuse"}]},
//    "ttft": {"bucket_ms", "buckets": [{"start", "<placement>": {"count", "avg_ms", "max_ms"}}]},
//    "recent": [{"at", "agent", "slot", "placement", "status", "cache_n", "prompt_n",
//                "ttft_ms", "ms"}]}
//
// Times are unix milliseconds. An agent id is listed as the admin API names
// it (`<id>@<scope>` under per-key namespaces). Thread-safe: it only reads
// the parts it is given, each under their own lock, none across the others.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/activity.h"
#include "core/metrics.h"
#include "core/placer.h"

namespace agentkv {

struct StatusQuery {
  enum class Sort { kLastUsed, kId, kTokens, kBytes, kRequests };
  std::size_t offset = 0;
  std::size_t limit = 50;  // agents on the page
  std::string filter;      // only agents whose id contains it
  Sort sort = Sort::kLastUsed;
  std::size_t recent = 50;  // recent requests

  static constexpr std::size_t kMaxLimit = 500;
};

// Parses the query string ("offset=50&limit=50&filter=plan&sort=id&recent=20";
// every parameter optional). Returns kInvalidArgument naming the parameter
// for an unknown one, a value that is not a number in range, an unknown
// sort, or a filter with a character no agent id has.
Result<StatusQuery> ParseStatusQuery(const std::string& query);

class StatusReport {
 public:
  struct Sources {
    SlotPool& pool;
    Placer& placer;
    Store& store;
    Metrics& metrics;
    Activity& activity;
    std::function<bool()> upstream_up;  // null: reported as up
    std::uint64_t disk_budget_bytes = 0;
    bool persistence = true;
  };
  explicit StatusReport(Sources sources) : s_(std::move(sources)) {}

  nlohmann::json Render(const StatusQuery& query) const;
  // The agent's memory is gone: its traffic counts go too.
  void Forget(const AgentId& agent) { s_.activity.Forget(agent); }
  // How the agent's last turn ended, what it said of its next, when, and
  // the gap before it (JSON, as /admin/agents shows it); null if unknown.
  nlohmann::json LastTurn(const AgentId& agent) const;

 private:
  nlohmann::json Totals(std::size_t known_agents, int resident) const;
  nlohmann::json Slots(const std::vector<SlotStatus>& slots) const;
  nlohmann::json Ttft() const;
  nlohmann::json Recent(std::size_t n) const;

  Sources s_;
};

}  // namespace agentkv

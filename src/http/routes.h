#pragma once
// Which paths agentkv handles itself and which it passes to llama-server.
// Pure functions, thread-safe.

#include <optional>
#include <string>

namespace agentkv {

enum class RouteKind {
  kInference,    // runs on a slot: agentkv places the agent first
  kSlotAction,   // /slots/{id}?action=...: agentkv owns the slots, refused
  kUnsupported,  // would run on a slot agentkv cannot pin: refused
  kAdmin,        // /admin/...: agentkv's lifecycle API
  kLiveness,     // GET /healthz: the process answers
  kReadiness,    // GET /readyz: llama-server is ready
  kMetrics,      // GET /metrics: Prometheus text
  kPassthrough,  // anything else: forwarded unchanged
};

// agentkv's lifecycle API on agents' memory (see admin_api.h).
enum class AdminAction {
  kNone,          // under /admin/ but no such route: 404
  kStats,         // GET    /admin/stats
  kListAgents,    // GET    /admin/agents
  kGetAgent,      // GET    /admin/agents/{id}
  kDelete,        // DELETE /admin/agents/{id}
  kWarm,          // POST   /admin/agents/{id}/warm
  kFork,          // POST   /admin/agents/{id}/fork
  kPin,           // POST   /admin/agents/{id}/pin
  kUnpin,         // DELETE /admin/agents/{id}/pin
  kListPrefixes,  // GET  /admin/prefixes
  kDeletePrefix,  // DELETE /admin/prefixes/{id} (the id as listed)
};

struct Route {
  RouteKind kind = RouteKind::kPassthrough;
  AdminAction admin = AdminAction::kNone;  // with kAdmin
  // The id from an /agents/{id}/ prefix or an /admin/agents/{id} route, not
  // yet validated (the http front parses it once, for both).
  std::optional<std::string> path_agent;
  // The path to send upstream: the prefix removed, the rest unchanged.
  std::string upstream_path;
};

// `path` is the decoded path, without the query string.
Route MatchRoute(const std::string& method, const std::string& path);

// A fixed name for metrics: never a raw path (paths carry agent ids).
std::string RouteLabel(const Route& route);

}  // namespace agentkv

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

struct Route {
  RouteKind kind = RouteKind::kPassthrough;
  // The id from an /agents/{id}/ prefix, not yet validated.
  std::optional<std::string> path_agent;
  // The path to send upstream: the prefix removed, the rest unchanged.
  std::string upstream_path;
};

// `path` is the decoded path, without the query string.
Route MatchRoute(const std::string& method, const std::string& path);

// A fixed name for metrics: never a raw path (paths carry agent ids).
std::string RouteLabel(const Route& route);

}  // namespace agentkv

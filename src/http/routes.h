#pragma once
// Which paths agentkv handles itself, which it passes to llama-server, and
// under what rule. Every llama-server route at the pinned commit (de3ff81)
// is listed in routes.cpp; a path that is not is refused. Pure functions,
// thread-safe.

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
  kStatusPage,   // GET /ui and /ui/...: the status page and its files (no data in them)
  kPreflight,    // OPTIONS: answered by agentkv (CORS), never forwarded
  kReadOnly,     // reads or computes, touches no slot and no shared state: forwarded
  kGlobal,       // changes what every agent shares, or reaches another agent's
                 // generation: forwarded only with the admin key
  kUnknown,      // not a llama-server route agentkv knows: refused (404)
};

// agentkv's lifecycle API on agents' memory (see admin_api.h).
enum class AdminAction {
  kNone,          // under /admin/ but no such route: 404
  kStats,         // GET    /admin/stats
  kStatus,        // GET    /admin/status (what the status page shows)
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
  RouteKind kind = RouteKind::kUnknown;
  AdminAction admin = AdminAction::kNone;  // with kAdmin
  // The id from an /agents/{id}/ prefix or an /admin/agents/{id} route, not
  // yet validated (the http front parses it once, for both).
  std::optional<std::string> path_agent;
  // The path to send upstream: the prefix removed, the rest unchanged.
  std::string upstream_path;
};

// `path` is the decoded path, without the query string. HEAD is matched as
// GET. llama-server's routes match the same under an /agents/{id}/ prefix;
// agentkv's own (/admin/, /healthz, /readyz, /metrics, /ui) only without one.
Route MatchRoute(const std::string& method, const std::string& path);

// A fixed name for metrics: never a raw path (paths carry agent ids).
std::string RouteLabel(const Route& route);

// False for request headers a client may not pass to llama-server because
// they change what it does beyond the one request: X-Conversation-Id (keeps
// a generation running after its client left, replayable and cancellable
// by anyone who knows the id), Origin (agentkv answers browsers itself),
// and agentkv's own X-Agent-Id and X-Agentkv-Parent. Case-insensitive.
bool ForwardsRequestHeader(const std::string& name);

// False for llama-server's CORS answers (Access-Control-*): agentkv sets its
// own from --cors-origins. Case-insensitive.
bool ForwardsResponseHeader(const std::string& name);

}  // namespace agentkv

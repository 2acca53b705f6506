#include "http/routes.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

namespace agentkv {

namespace {

// llama-server routes that run on a slot and honour the id_slot field.
constexpr std::array<std::string_view, 8> kInferencePaths = {
    "/completion",          "/completions", "/v1/completions", "/chat/completions",
    "/v1/chat/completions", "/responses",   "/v1/responses",   "/infill",
};

// Routes that also run on a slot but drop id_slot (llama-server rebuilds the
// Anthropic body) or serve other model kinds: passed through, they would land
// on whatever slot llama-server picks, possibly one holding an agent's KV.
constexpr std::array<std::string_view, 10> kUnsupportedPaths = {
    "/v1/messages",
    "/embedding",
    "/embeddings",
    "/v1/embeddings",
    "/rerank",
    "/reranking",
    "/v1/rerank",
    "/v1/reranking",
    "/audio/transcriptions",
    "/v1/audio/transcriptions",
};

constexpr std::string_view kAgentsPrefix = "/agents/";

struct AdminRoute {
  std::string_view method;
  std::string_view pattern;  // "{id}" matches one path segment, the agent id
  AdminAction action;
};

constexpr std::array<AdminRoute, 10> kAdminRoutes = {{
    {"GET", "/admin/stats", AdminAction::kStats},
    {"GET", "/admin/agents", AdminAction::kListAgents},
    {"GET", "/admin/agents/{id}", AdminAction::kGetAgent},
    {"DELETE", "/admin/agents/{id}", AdminAction::kDelete},
    {"POST", "/admin/agents/{id}/warm", AdminAction::kWarm},
    {"POST", "/admin/agents/{id}/fork", AdminAction::kFork},
    {"POST", "/admin/agents/{id}/pin", AdminAction::kPin},
    {"DELETE", "/admin/agents/{id}/pin", AdminAction::kUnpin},
    {"GET", "/admin/prefixes", AdminAction::kListPrefixes},
    {"DELETE", "/admin/prefixes/{id}", AdminAction::kDeletePrefix},
}};

// Splits "/admin/agents/x/" into {"admin", "agents", "x"}: one trailing
// slash is ignored, empty segments inside are kept (and match nothing).
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::size_t start = path.empty() || path[0] != '/' ? 0 : 1;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The admin route `path` names, with its {id} segment in `route.path_agent`.
void MatchAdmin(const std::string& method, const std::string& path, Route& route) {
  const std::vector<std::string_view> given = Segments(path);
  for (const AdminRoute& r : kAdminRoutes) {
    const std::vector<std::string_view> pattern = Segments(r.pattern);
    if (r.method != method || pattern.size() != given.size()) continue;
    std::optional<std::string> id;
    bool match = true;
    for (std::size_t i = 0; i < pattern.size() && match; ++i) {
      if (pattern[i] == "{id}") {
        id = std::string(given[i]);
      } else {
        match = pattern[i] == given[i];
      }
    }
    if (!match) continue;
    route.admin = r.action;
    route.path_agent = id;
    return;
  }
}

}  // namespace

Route MatchRoute(const std::string& method, const std::string& path) {
  Route route;
  route.upstream_path = path;
  if (path.compare(0, kAgentsPrefix.size(), kAgentsPrefix) == 0) {
    const std::size_t id_end = path.find('/', kAgentsPrefix.size());
    const std::size_t id_len =
        (id_end == std::string::npos ? path.size() : id_end) - kAgentsPrefix.size();
    route.path_agent = path.substr(kAgentsPrefix.size(), id_len);
    route.upstream_path = id_end == std::string::npos ? "/" : path.substr(id_end);
  }
  const std::string& p = route.upstream_path;
  if (!route.path_agent && p.compare(0, 7, "/admin/") == 0) {
    route.kind = RouteKind::kAdmin;
    MatchAdmin(method, p, route);
    return route;
  }
  if (!route.path_agent && method == "GET") {
    if (p == "/healthz") route.kind = RouteKind::kLiveness;
    if (p == "/readyz") route.kind = RouteKind::kReadiness;
    if (p == "/metrics") route.kind = RouteKind::kMetrics;
  }
  if (method == "POST") {
    for (std::string_view inference : kInferencePaths) {
      if (p == inference) route.kind = RouteKind::kInference;
    }
    for (std::string_view unsupported : kUnsupportedPaths) {
      if (p == unsupported) route.kind = RouteKind::kUnsupported;
    }
    if (p.compare(0, 7, "/slots/") == 0) route.kind = RouteKind::kSlotAction;
  }
  return route;
}

std::string RouteLabel(const Route& route) {
  switch (route.kind) {
    case RouteKind::kInference:
      return route.upstream_path;  // one of a fixed set
    case RouteKind::kSlotAction:
      return "slot_action";
    case RouteKind::kUnsupported:
      return "unsupported";
    case RouteKind::kAdmin:
      return "admin";
    case RouteKind::kLiveness:
      return "healthz";
    case RouteKind::kReadiness:
      return "readyz";
    case RouteKind::kMetrics:
      return "metrics";
    case RouteKind::kPassthrough:
      break;
  }
  return "passthrough";
}

}  // namespace agentkv

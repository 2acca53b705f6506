#include "agentkv/routes.h"

#include <array>
#include <string_view>

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

#include "http/routes.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>
#include <vector>

namespace agentkv {

namespace {

struct LlamaRoute {
  std::string_view method;
  std::string_view path;
  RouteKind kind;
};

// Every route llama-server registers at the pinned commit (tools/server/
// server.cpp and server-http.cpp), by what passing it through would do.
// POST /slots/{id} (slot actions) is matched by its prefix below. Not listed,
// so refused: the web UI ("/", "/index.html" and its assets: a page served
// from agentkv's origin would be exempt from the browser rules) and
// /predict (Vertex AI, only with AIP_MODE set, dispatches to any route).
constexpr LlamaRoute kLlamaRoutes[] = {
    // Run on a slot and honour id_slot: agentkv places the agent first.
    {"POST", "/completion", RouteKind::kInference},
    {"POST", "/completions", RouteKind::kInference},
    {"POST", "/v1/completions", RouteKind::kInference},
    {"POST", "/chat/completions", RouteKind::kInference},
    {"POST", "/v1/chat/completions", RouteKind::kInference},
    {"POST", "/responses", RouteKind::kInference},
    {"POST", "/v1/responses", RouteKind::kInference},
    {"POST", "/infill", RouteKind::kInference},
    // Also run on a slot but drop id_slot (llama-server rebuilds the
    // Anthropic body) or serve other model kinds: they would land on
    // whatever slot llama-server picks, possibly one holding an agent's KV.
    {"POST", "/v1/messages", RouteKind::kUnsupported},
    {"POST", "/embedding", RouteKind::kUnsupported},
    {"POST", "/embeddings", RouteKind::kUnsupported},
    {"POST", "/v1/embeddings", RouteKind::kUnsupported},
    {"POST", "/rerank", RouteKind::kUnsupported},
    {"POST", "/reranking", RouteKind::kUnsupported},
    {"POST", "/v1/rerank", RouteKind::kUnsupported},
    {"POST", "/v1/reranking", RouteKind::kUnsupported},
    {"POST", "/audio/transcriptions", RouteKind::kUnsupported},
    {"POST", "/v1/audio/transcriptions", RouteKind::kUnsupported},
    // Read state every agent may see, or compute from the request alone
    // (template, tokenizer): no slot, nothing changed.
    {"GET", "/health", RouteKind::kReadOnly},
    {"GET", "/v1/health", RouteKind::kReadOnly},
    {"GET", "/metrics", RouteKind::kReadOnly},  // under /agents/{id}/ only
    {"GET", "/props", RouteKind::kReadOnly},
    {"GET", "/models", RouteKind::kReadOnly},
    {"GET", "/v1/models", RouteKind::kReadOnly},
    {"GET", "/lora-adapters", RouteKind::kReadOnly},
    {"POST", "/tokenize", RouteKind::kReadOnly},
    {"POST", "/detokenize", RouteKind::kReadOnly},
    {"POST", "/apply-template", RouteKind::kReadOnly},
    {"POST", "/chat/completions/input_tokens", RouteKind::kReadOnly},
    {"POST", "/v1/chat/completions/input_tokens", RouteKind::kReadOnly},
    {"POST", "/responses/input_tokens", RouteKind::kReadOnly},
    {"POST", "/v1/responses/input_tokens", RouteKind::kReadOnly},
    {"POST", "/v1/messages/count_tokens", RouteKind::kReadOnly},
    // Change what every agent shares, show what other agents sent, reach
    // into another agent's generation, or act for the server itself.
    {"POST", "/props", RouteKind::kGlobal},
    {"POST", "/lora-adapters", RouteKind::kGlobal},
    {"GET", "/slots", RouteKind::kGlobal},                         // every slot's prompt and state
    {"POST", "/v1/chat/completions/control", RouteKind::kGlobal},  // any completion id
    {"GET", "/v1/stream", RouteKind::kGlobal},                     // replays any conv_id
    {"DELETE", "/v1/stream", RouteKind::kGlobal},                  // cancels any conv_id
    {"POST", "/v1/streams/lookup", RouteKind::kGlobal},
    {"GET", "/tools", RouteKind::kGlobal},  // server tools (shell, files) when enabled
    {"POST", "/tools", RouteKind::kGlobal},
    {"GET", "/cors-proxy", RouteKind::kGlobal},  // fetches any URL when enabled
    {"POST", "/cors-proxy", RouteKind::kGlobal},
    // Router mode (--models) only: model load and unload.
    {"POST", "/models", RouteKind::kGlobal},
    {"DELETE", "/models", RouteKind::kGlobal},
    {"POST", "/models/load", RouteKind::kGlobal},
    {"POST", "/models/unload", RouteKind::kGlobal},
    {"GET", "/models/sse", RouteKind::kGlobal},
};

constexpr std::string_view kAgentsPrefix = "/agents/";

struct AdminRoute {
  std::string_view method;
  std::string_view pattern;  // "{id}" matches one path segment, the agent id
  AdminAction action;
};

constexpr std::array<AdminRoute, 11> kAdminRoutes = {{
    {"GET", "/admin/stats", AdminAction::kStats},
    {"GET", "/admin/status", AdminAction::kStatus},
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
  if (method == "OPTIONS") {
    route.kind = RouteKind::kPreflight;
    return route;
  }
  const std::string m = method == "HEAD" ? "GET" : method;
  if (!route.path_agent && p.compare(0, 7, "/admin/") == 0) {
    route.kind = RouteKind::kAdmin;
    MatchAdmin(m, p, route);
    return route;
  }
  if (!route.path_agent && m == "GET") {
    if (p == "/healthz") route.kind = RouteKind::kLiveness;
    if (p == "/readyz") route.kind = RouteKind::kReadiness;
    if (p == "/metrics") route.kind = RouteKind::kMetrics;
    if (p == "/ui" || p.compare(0, 4, "/ui/") == 0) route.kind = RouteKind::kStatusPage;
    if (route.kind != RouteKind::kUnknown) return route;
  }
  if (m == "POST" && p.compare(0, 7, "/slots/") == 0) {
    route.kind = RouteKind::kSlotAction;
    return route;
  }
  for (const LlamaRoute& r : kLlamaRoutes) {
    if (r.method == m && r.path == p) route.kind = r.kind;
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
    case RouteKind::kStatusPage:
      return "ui";
    case RouteKind::kPreflight:
      return "preflight";
    case RouteKind::kReadOnly:
      return "read_only";
    case RouteKind::kGlobal:
      return "global";
    case RouteKind::kUnknown:
      break;
  }
  return "unknown";
}

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

bool ForwardsRequestHeader(const std::string& name) {
  for (std::string_view h :
       {"X-Conversation-Id", "Origin", "X-Agent-Id", "X-Agentkv-Parent", "X-Agent-Next"}) {
    if (EqualsIgnoreCase(name, h)) return false;
  }
  return true;
}

bool ForwardsResponseHeader(const std::string& name) {
  constexpr std::string_view kCors = "Access-Control-";
  return !EqualsIgnoreCase(std::string_view(name).substr(0, kCors.size()), kCors);
}

}  // namespace agentkv

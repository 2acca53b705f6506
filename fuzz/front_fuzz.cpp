// libFuzzer target: one request through the http front's pure logic, in the
// order ProxyServer::Handle runs it (head checks, routing, browser policy,
// keys, path agent, JSON nesting, body checks, identity, pinning), with the
// invariants that must hold whatever the bytes. A failed invariant aborts:
// libFuzzer reports it as a crash and keeps the input.
//
// Input framing (a raw HTTP/1.1 request is a valid input):
//   line 1:  METHOD SP TARGET [SP anything]
//   then:    "Name: value" lines, up to the first empty line
//   rest:    the body, as bytes
// Lines end at "\n"; one "\r" before it is dropped. A header line without
// ':' is ignored.
#include <httplib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentkv/agent_id.h"
#include "http/auth.h"
#include "http/browser_policy.h"
#include "http/http_errors.h"
#include "http/identity.h"
#include "http/llama_fields.h"
#include "http/log_text.h"
#include "http/request_limits.h"
#include "http/routes.h"

namespace agentkv {
namespace {

using nlohmann::json;

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

struct RawRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The next line of `in` from `*pos`, without its "\r\n" or "\n".
std::optional<std::string_view> NextLine(std::string_view in, std::size_t* pos) {
  if (*pos >= in.size()) return std::nullopt;
  const std::size_t nl = in.find('\n', *pos);
  const std::size_t end = nl == std::string_view::npos ? in.size() : nl;
  std::string_view line = in.substr(*pos, end - *pos);
  *pos = nl == std::string_view::npos ? in.size() : nl + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

RawRequest Split(std::string_view in) {
  RawRequest r;
  std::size_t pos = 0;
  const std::string_view first = NextLine(in, &pos).value_or("");
  const std::size_t sp = first.find(' ');
  r.method = std::string(first.substr(0, sp));
  if (sp != std::string_view::npos) {
    const std::string_view rest = first.substr(sp + 1);
    r.target = std::string(rest.substr(0, rest.find(' ')));
  }
  while (std::optional<std::string_view> line = NextLine(in, &pos)) {
    if (line->empty()) break;
    const std::size_t colon = line->find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line->substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    r.headers.emplace_back(std::string(line->substr(0, colon)), std::string(value));
  }
  r.body = std::string(in.substr(pos));
  return r;
}

bool IsClientIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsClientId(std::string_view s) {
  if (s.empty() || s.size() > AgentId::kMaxLength) return false;
  for (char c : s) {
    if (!IsClientIdChar(c)) return false;
  }
  return true;
}

bool IsNamespace(std::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

bool IsQualifiedId(std::string_view s) {
  const std::size_t at = s.rfind('@');
  if (at == std::string_view::npos) return IsClientId(s);
  return IsClientId(s.substr(0, at)) && IsNamespace(s.substr(at + 1));
}

// Every error agentkv answers goes out as ErrorJson: it must be the JSON
// error shape, whatever client text the message quotes.
void CheckErrorShape(const Status& s) {
  FUZZ_CHECK(!s.ok());
  const int status = HttpStatusFor(s.code());
  FUZZ_CHECK(status >= 400 && status < 600);
  std::string text;
  try {
    text = ErrorJson(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ErrorJson threw: %s\n", e.what());
    std::abort();
  }
  const json j = json::parse(text, nullptr, false);
  FUZZ_CHECK(j.is_object() && j.size() == 1 && j.contains("error"));
  const json& e = j["error"];
  FUZZ_CHECK(e.is_object() && e.size() == 3);
  FUZZ_CHECK(e.value("code", 0) == status);
  FUZZ_CHECK(e.contains("message") && e["message"].is_string());
  FUZZ_CHECK(e.contains("type") && e["type"].is_string());
}

// Undoes EscapeForLog; nullopt if `s` is not something it could produce.
std::optional<std::string> Unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (i + 3 < s.size() && s[i + 1] == 'x') {
      out += static_cast<char>(std::strtol(std::string(s.substr(i + 2, 2)).c_str(), nullptr, 16));
      i += 3;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

void CheckLogText(std::string_view text) {
  const std::string escaped = EscapeForLog(text);
  for (char c : escaped) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u >= 0x20 && u != 0x7f);
  }
  FUZZ_CHECK(Unescape(escaped) == std::string(text));
}

void CheckAgentIdParsers(const std::string& text) {
  Result<AgentId> client = AgentId::Parse(text);
  FUZZ_CHECK(client.ok() == IsClientId(text));
  if (client.ok()) {
    FUZZ_CHECK(client->str() == text && !client->internal());
    FUZZ_CHECK(client->ForLog().size() <= 16);
    const AgentId scoped = AgentId::InNamespace(client.value(), "0f3a");
    FUZZ_CHECK(!AgentId::Parse(scoped.str()).ok());
    FUZZ_CHECK(AgentId::ParseQualified(scoped.str()).ok());
  }
  Result<AgentId> qualified = AgentId::ParseQualified(text);
  FUZZ_CHECK(qualified.ok() == IsQualifiedId(text));
  Result<AgentId> stored = AgentId::ParseStored(text);
  const bool internal = !text.empty() && text[0] == '~' && IsClientId(text.substr(1));
  FUZZ_CHECK(stored.ok() == (qualified.ok() || internal));
}

// n_cmpl as llama-server reads it (server-schema.cpp, field_num<int32_t>
// with alias "n"): the first of n_cmpl, n that is present and not null,
// converted as nlohmann's get<int32_t> does. Completions past the first run
// on a slot llama-server picks. nullopt: llama-server refuses the value.
std::optional<std::int64_t> LlamaCompletions(const json& body) {
  for (const char* name : {"n_cmpl", "n"}) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) continue;
    if (it->is_boolean()) return it->get<bool>() ? 1 : 0;
    if (it->is_number_integer()) return static_cast<std::int32_t>(it->get<std::int64_t>());
    if (it->is_number_unsigned()) return static_cast<std::int32_t>(it->get<std::uint64_t>());
    if (it->is_number_float()) {
      const double d = it->get<double>();
      const bool fits = d > std::numeric_limits<std::int32_t>::min() - 1.0 &&
                        d < std::numeric_limits<std::int32_t>::max() + 1.0;
      return fits ? std::optional<std::int64_t>(static_cast<std::int32_t>(d)) : std::nullopt;
    }
    return std::nullopt;
  }
  return 1;
}

int Depth(const json& j) {
  int deepest = 0;
  if (j.is_array() || j.is_object()) {
    for (const json& child : j) deepest = std::max(deepest, Depth(child));
    return deepest + 1;
  }
  return 0;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

void CheckRoute(const std::string& method, const std::string& path, const Route& route) {
  const bool under_agents = StartsWith(path, "/agents/");
  if (route.path_agent) FUZZ_CHECK(under_agents || route.kind == RouteKind::kAdmin);
  if (under_agents) {
    FUZZ_CHECK(route.path_agent.has_value());
    // agentkv's own routes are never reached through an agent's prefix.
    FUZZ_CHECK(route.kind != RouteKind::kAdmin && route.admin == AdminAction::kNone);
    FUZZ_CHECK(route.kind != RouteKind::kLiveness && route.kind != RouteKind::kReadiness &&
               route.kind != RouteKind::kMetrics && route.kind != RouteKind::kStatusPage);
    FUZZ_CHECK(route.path_agent && route.path_agent->find('/') == std::string::npos);
    const std::string prefix = "/agents/" + *route.path_agent;
    FUZZ_CHECK(StartsWith(path, prefix));
    FUZZ_CHECK(path.size() == prefix.size() ? route.upstream_path == "/"
                                            : path.substr(prefix.size()) == route.upstream_path);
  } else {
    FUZZ_CHECK(route.upstream_path == path);
  }
  if (route.admin != AdminAction::kNone) FUZZ_CHECK(route.kind == RouteKind::kAdmin);
  if (route.kind == RouteKind::kAdmin) FUZZ_CHECK(!under_agents && StartsWith(path, "/admin/"));
  if (route.kind == RouteKind::kInference) FUZZ_CHECK(method == "POST");
  if (method == "HEAD") {
    const Route get = MatchRoute("GET", path);
    FUZZ_CHECK(get.kind == route.kind && get.admin == route.admin);
  }
  // Metrics labels come from a fixed set, never from the client's path.
  const std::string label = RouteLabel(route);
  if (route.kind == RouteKind::kInference) {
    FUZZ_CHECK(MatchRoute("POST", label).kind == RouteKind::kInference);
  } else {
    FUZZ_CHECK(label.find('/') == std::string::npos && label.size() < 16);
  }
}

void CheckBrowserPolicy(const std::string& host, const std::string& origin) {
  BrowserPolicy policy;
  policy.allowed_hosts = {"agentkv.internal"};
  policy.cors_origins = {"https://app.example"};
  if (CheckHost(policy, host).ok()) {
    std::string lower = host;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool named = false;
    for (std::string_view name : {"localhost", "127.0.0.1", "[::1]", "agentkv.internal"}) {
      const std::string_view rest =
          std::string_view(lower).substr(std::min(name.size(), lower.size()));
      named = named || (StartsWith(lower, name) && (rest.empty() || rest == "." || rest[0] == ':' ||
                                                    (rest[0] == '.' && rest[1] == ':')));
    }
    FUZZ_CHECK(named);
  } else {
    CheckErrorShape(CheckHost(policy, host));
  }
  const Status o = CheckOrigin(policy, origin);
  FUZZ_CHECK(o.ok() == (origin.empty() || AllowsOrigin(policy, origin)));
  if (!o.ok()) CheckErrorShape(o);
  // agentkv's own origin is only ever one of the names it is known by.
  if (IsOwnOrigin(policy, origin, host)) {
    FUZZ_CHECK(CheckHost(policy, host).ok());
  }
  policy.allowed_hosts = {"*"};  // makes no origin agentkv's own
  if (IsOwnOrigin(policy, origin, host)) {
    policy.allowed_hosts = {};
    FUZZ_CHECK(IsOwnOrigin(policy, origin, host));
  }
}

void CheckAuthorization(RouteKind kind, const std::string& authorization) {
  AuthPolicy policy;
  policy.api_keys = {"key-a"};
  policy.admin_key = "key-admin";
  const Status s = Authorize(policy, kind, authorization);
  if (!s.ok()) return CheckErrorShape(s);
  // The status page holds no data (its data comes from the admin API).
  const bool open = kind == RouteKind::kLiveness || kind == RouteKind::kReadiness ||
                    kind == RouteKind::kMetrics || kind == RouteKind::kPreflight ||
                    kind == RouteKind::kStatusPage;
  if (open) return;
  if (kind == RouteKind::kAdmin || kind == RouteKind::kGlobal) {
    FUZZ_CHECK(authorization == "Bearer key-admin");
  } else {
    FUZZ_CHECK(authorization == "Bearer key-a");
    FUZZ_CHECK(ApiKeyOf(policy, authorization) == "key-a");
  }
}

// An inference body: checked, resolved to an agent, pinned to a slot.
void CheckInference(const std::optional<AgentId>& path_agent,
                    const std::optional<std::string>& header_agent, const std::string& raw,
                    int slot) {
  json body = json::parse(raw, nullptr, false);
  // A body that passed the shape check is JSON.
  FUZZ_CHECK(raw.empty() || !body.is_discarded());
  if (body.is_discarded()) return;
  // Everything agentkv parses has passed the nesting bound first.
  FUZZ_CHECK(Depth(body) <= RequestLimits{}.max_json_depth);
  const Status checked = CheckInferenceBody(body);
  if (!checked.ok()) return CheckErrorShape(checked);
  FUZZ_CHECK(body.is_object());
  // No request agentkv pins may run a completion on another slot.
  const std::optional<std::int64_t> completions = LlamaCompletions(body);
  FUZZ_CHECK(!completions || *completions <= 1);

  Result<Tenant> tenant = ResolveTenant(path_agent, header_agent, &body);
  if (!tenant.ok()) {
    CheckErrorShape(tenant.status());
  } else if (tenant.value()) {
    const std::string& id = tenant.value()->str();
    FUZZ_CHECK(IsClientId(id));
    if (path_agent) FUZZ_CHECK(*tenant.value() == *path_agent);
    if (!path_agent && header_agent) FUZZ_CHECK(id == *header_agent);
  } else {
    FUZZ_CHECK(!path_agent && !header_agent);
  }
  (void)CarriesMedia(body);
  const std::uint64_t key = PromptKeyOf(body);
  PinToSlot(body, SlotId{slot});
  // What llama-server receives: exactly the slot agentkv chose, caching on.
  const json sent = json::parse(body.dump(), nullptr, false);
  FUZZ_CHECK(sent.is_object());
  FUZZ_CHECK(sent.count("id_slot") == 1 && sent["id_slot"].is_number_integer() &&
             sent["id_slot"].get<int>() == slot);
  FUZZ_CHECK(sent.count("cache_prompt") == 1 && sent["cache_prompt"] == true);
  FUZZ_CHECK(PromptKeyOf(sent) == key);
  FUZZ_CHECK(CheckInferenceBody(sent).ok());
}

// The body read as an upstream answer: the timings scanner takes any bytes.
void CheckTimingsScanner(const std::string& bytes) {
  TimingsScanner scanner;
  const std::size_t half = bytes.size() / 2;
  scanner.Feed(bytes.data(), half);
  scanner.Feed(bytes.data() + half, bytes.size() - half);
  (void)scanner.Finish();
}

void Run(std::string_view input) {
  const RawRequest raw = Split(input);
  httplib::Request req;
  req.method = raw.method;
  req.target = raw.target;
  for (const auto& [name, value] : raw.headers) {
    req.headers.emplace(name, value);
    CheckLogText(value);
    CheckAgentIdParsers(value);
  }
  CheckLogText(raw.target);
  CheckLogText(raw.method);

  const RequestLimits limits;
  const Status head = CheckHead(req, limits);
  if (!head.ok()) CheckErrorShape(head);
  // Past the head checks, whom a request is for and which key it used are
  // unambiguous: httplib's lookups take the first of a repeated header.
  for (const char* single : {"X-Agent-Id", "Authorization", "Host", "Content-Length"}) {
    if (head.ok()) FUZZ_CHECK(req.headers.count(single) <= 1);
  }

  const std::string path = raw.target.substr(0, raw.target.find('?'));
  const Route route = MatchRoute(raw.method, path);
  CheckRoute(raw.method, path, route);
  if (path.find('%') != std::string::npos) {
    CheckErrorShape(Status::Error(ErrorCode::kInvalidArgument, "percent-encoded"));
  }
  CheckErrorShape(Status::Error(ErrorCode::kNotFound, raw.method + " " + route.upstream_path +
                                                          " is not a llama-server route"));
  CheckBrowserPolicy(req.get_header_value("Host"), req.get_header_value("Origin"));
  CheckAuthorization(route.kind, req.get_header_value("Authorization"));

  std::optional<AgentId> path_agent;
  if (route.path_agent) {
    CheckAgentIdParsers(*route.path_agent);
    const bool admin = route.kind == RouteKind::kAdmin;
    Result<AgentId> id = ParsePathAgent(*route.path_agent, admin);
    FUZZ_CHECK(id.ok() ==
               (admin ? IsQualifiedId(*route.path_agent) : IsClientId(*route.path_agent)));
    if (!id.ok()) CheckErrorShape(id.status());
    if (id.ok()) path_agent = id.value();
  }

  // agentkv checks every non-empty body's shape before anything parses it.
  const Status shape = raw.body.empty() ? Status::Ok() : CheckJsonShape(raw.body, limits);
  if (!shape.ok()) {
    CheckErrorShape(shape);
    FUZZ_CHECK(shape.code() == ErrorCode::kInvalidArgument || shape.code() == ErrorCode::kTooLarge);
  } else if (route.kind == RouteKind::kInference || route.kind == RouteKind::kUnknown) {
    // Unknown routes too: the body checks then see bodies of every shape.
    std::optional<std::string> header_agent;
    if (req.has_header("X-Agent-Id")) header_agent = req.get_header_value("X-Agent-Id");
    CheckInference(path_agent, header_agent, raw.body, static_cast<int>(raw.body.size() % 4));
  }
  CheckTimingsScanner(raw.body);
}

}  // namespace
}  // namespace agentkv

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  agentkv::Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

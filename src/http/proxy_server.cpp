#include "http/proxy_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "http/auth.h"
#include "http/front_server.h"
#include "http/http_errors.h"
#include "http/identity.h"
#include "http/llama_fields.h"
#include "http/log_text.h"
#include "http/next_hint.h"
#include "http/request_limits.h"
#include "http/response_pipe.h"
#include "http/routes.h"
#include "http/status_page.h"

namespace agentkv {

using nlohmann::json;

namespace {

bool EqualsIgnoreCase(const std::string& a, const char* b) {
  const std::string_view bv(b);
  return a.size() == bv.size() && std::equal(a.begin(), a.end(), bv.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Connection-level headers, httplib's own pseudo headers, and those agentkv
// sets or consumes itself: never copied from one side to the other.
bool IsHopHeader(const std::string& name) {
  for (const char* h : {"Host", "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length",
                        "Content-Type", "Accept-Encoding", "Content-Encoding", "X-Agent-Id",
                        kNextHeader, "REMOTE_ADDR", "REMOTE_PORT", "LOCAL_ADDR", "LOCAL_PORT"}) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

// Every error agentkv answers itself goes through here.
void ReplyError(httplib::Response& res, const Status& s) {
  res.status = HttpStatusFor(s.code());
  if (res.status == 503) res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
  res.set_content(ErrorJson(s), "application/json");
}

Status Error(ErrorCode code, std::string message) {
  return Status::Error(code, std::move(message));
}

Status TooLarge(std::size_t max_bytes) {
  return Error(ErrorCode::kTooLarge, "request body exceeds this route's limit of " +
                                         std::to_string(max_bytes) + " bytes");
}

std::string HeaderValue(const HeaderList& headers, const char* name) {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

// The request path as sent, without its query string.
std::string RawPath(const httplib::Request& req) {
  return req.target.substr(0, req.target.find('?'));
}

// An answer given without reading an announced body: the body's bytes
// would be taken for the next request, so the connection ends with it.
void CloseUnread(const httplib::Request& req, httplib::Response& res) {
  if (!AnnouncesBody(req)) return;
  res.set_header("Connection", "close");
  if (ConnectionContext* c = ConnectionContext::Current()) c->CloseAfterAnswer();
}

RequestLimits LimitsOf(const ProxyOptions& o) {
  return RequestLimits{o.max_body_bytes, o.max_headers, o.max_json_depth, o.max_json_values};
}

// The body limit of a route: the full one where a conversation is sent.
std::size_t MaxBodyOf(const ProxyOptions& o, const Route& route) {
  const bool full = route.kind == RouteKind::kInference || route.kind == RouteKind::kAdmin;
  return full ? o.max_body_bytes : std::min(o.max_body_bytes, o.max_passthrough_body_bytes);
}

ConnectionLimits ConnectionLimitsOf(const ProxyOptions& o) {
  ConnectionLimits limits = o.connections;
  // Chunk framing can add a few bytes a chunk; what matters is that a line
  // without an end cannot grow past a bound.
  limits.stream.max_raw_body_bytes = 2 * o.max_body_bytes + (64u << 10);
  return limits;
}

// The raw request target with the /agents/{id} prefix removed.
std::string UpstreamTarget(const httplib::Request& req, const Route& route) {
  const std::size_t q = req.target.find('?');
  return route.upstream_path + (q == std::string::npos ? "" : req.target.substr(q));
}

// The client's key is never forwarded (Authorization, or X-Api-Key, which
// llama-server also reads): agentkv checks the client's key itself, and
// llama-server's key is agentkv's own (Upstream adds it).
ForwardRequest ForwardOf(const httplib::Request& req, std::string target, std::string body) {
  ForwardRequest f;
  f.method = req.method;
  f.path = std::move(target);
  f.body = std::move(body);
  f.content_type = req.get_header_value("Content-Type");
  for (const auto& [name, value] : req.headers) {
    const bool key = EqualsIgnoreCase(name, "Authorization") || EqualsIgnoreCase(name, "X-Api-Key");
    if (IsHopHeader(name) || !ForwardsRequestHeader(name) || key) continue;
    f.headers.emplace_back(name, value);
  }
  return f;
}

}  // namespace

// One request in flight to llama-server: a worker thread reads the upstream
// response into the pipe; the client's response is written from the pipe.
// Destroying it abandons the exchange and joins the worker.
// Lives until the client's response is written (its last reference is the
// response's content provider): Drain() waits for that, not just upstream.
struct ProxyServer::Exchange {
  explicit Exchange(ProxyServer* server)
      : owner(server), pipe(server->options_.max_unsent_answer_bytes) {
    owner->Track(this, true);
  }
  ~Exchange() {
    pipe.Abandon();
    if (worker.joinable()) worker.join();
    owner->Track(this, false);
  }

  ProxyServer* const owner;
  ResponsePipe pipe;
  std::thread worker;

  // Streams the upstream answer into `pipe` and logs one line per request.
  // `*status` is llama-server's HTTP status, 0 if none arrived.
  static Status Forward(Upstream& upstream, const ForwardRequest& request,
                        const std::optional<Lease>& lease, ResponsePipe& pipe,
                        std::optional<Timings>* timings, int* status_out,
                        std::optional<std::chrono::steady_clock::time_point>* first_byte,
                        Placer::PrefillTicket* prefill) {
    const auto start = std::chrono::steady_clock::now();
    TimingsScanner scanner;
    int& status = *status_out;
    ResponseSink sink{[&](int s, const HeaderList& headers) {
                        status = s;
                        return pipe.PutHeaders(s, headers);
                      },
                      [&](const char* data, size_t size) {
                        if (!*first_byte) {
                          *first_byte = std::chrono::steady_clock::now();
                          prefill->End();
                        }
                        scanner.Feed(data, size);
                        return pipe.PutBody(data, size);
                      }};
    Status result = upstream.Forward(request, sink, &pipe.cancel_token());
    if (pipe.overflowed()) {
      spdlog::warn("{} {}: the client read the answer too slowly ({} bytes waited for it): cut off",
                   request.method, EscapeForLog(request.path), pipe.unsent());
      result = Error(ErrorCode::kTimeout, "the client read the answer too slowly");
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    if (!lease) {
      spdlog::debug("{} {} status={} ms={}", request.method, EscapeForLog(request.path), status,
                    ms);
      return result;
    }
    const std::optional<Timings> t = scanner.Finish();
    *timings = t;
    spdlog::info("{} {} agent={} slot={} placement={} status={} cache_n={} prompt_n={} ms={}{}",
                 request.method, EscapeForLog(request.path),
                 lease->tenant() ? lease->tenant()->ForLog() : "-", lease->slot().value,
                 PlacementName(lease->placement()), status, t ? t->cache_n : -1,
                 t ? t->prompt_n : -1, ms,
                 result.ok() ? "" : " (" + EscapeForLog(result.message()) + ")");
    return result;
  }
};

ProxyServer::ProxyServer(ProxyOptions options, Upstream& upstream, Placer& placer, AdminApi& admin,
                         Metrics& metrics, Hooks hooks)
    : options_(std::move(options)),
      upstream_(upstream),
      placer_(placer),
      admin_(admin),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      server_(std::make_unique<FrontServer>(ConnectionLimitsOf(options_))),
      new_agents_(options_.max_new_agents_per_minute) {
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        // Only answers httplib made itself (no route, body too large, bad
        // request line) lack a Content-Type; forwarded answers pass untouched.
        if (!res.body.empty() || res.has_header("Content-Type")) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        const ConnectionContext* c = ConnectionContext::Current();
        const StreamFault fault = c ? c->fault() : StreamFault::kNone;
        if (fault == StreamFault::kHeadTooLarge) res.status = 431;
        if (fault == StreamFault::kTimedOut) res.status = 408;
        const std::string message =
            res.status == 413   ? "request body exceeds the configured limit"
            : res.status == 431 ? "request head is too large"
            : res.status == 408 ? "request was not received in time"
                                : "request rejected (HTTP " + std::to_string(res.status) + ")";
        res.set_content(ErrorJson(res.status, message), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("request failed: {}", EscapeForLog(what));
        ReplyError(res, Error(ErrorCode::kInternal, what));
      });
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return PreRoute(req, res) ? httplib::Server::HandlerResponse::Handled
                              : httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib answers "Expect: 100-continue" before routing: a head to be
  // refused is refused instead of being asked for its body. httplib calls
  // this outside its exception handler: an exception would end the process.
  server_->set_expect_100_continue_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        try {
          return PreRoute(req, res) ? res.status : 100;
        } catch (const std::exception& e) {
          spdlog::error("request failed: {}", EscapeForLog(e.what()));
          res.set_header("Connection", "close");
          ReplyError(res, Error(ErrorCode::kInternal, e.what()));
          return res.status;
        }
      });
  auto without_body = [this](const httplib::Request& req, httplib::Response& res) {
    Handle(req, res, nullptr);
  };
  // Methods with a body get its reader, not the body: httplib would read
  // it whole first, whatever its size, before any handler could refuse it.
  auto with_body = [this](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& read) { Handle(req, res, &read); };
  server_->Get(".*", without_body);
  server_->Options(".*", without_body);
  server_->Post(".*", with_body);
  server_->Put(".*", with_body);
  server_->Patch(".*", with_body);
  server_->Delete(".*", with_body);
}

ProxyServer::~ProxyServer() { Stop(); }

Result<int> ProxyServer::Bind() {
  // httplib listens with a backlog of 5: a burst of agents connecting at once
  // would see SYNs dropped and retried a second later. Widen it after bind.
  int listen_fd = -1;
  server_->set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });
  Result<int> port = BindPort();
  if (port.ok() && listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  return port;
}

Result<int> ProxyServer::BindPort() {
  if (options_.port == 0) {
    const int port = server_->bind_to_any_port(options_.host);
    if (port > 0) return port;
  } else if (server_->bind_to_port(options_.host, options_.port)) {
    return options_.port;
  }
  return Status::Error(ErrorCode::kConflict, "cannot listen on " + options_.host + ":" +
                                                 std::to_string(options_.port) +
                                                 " (another process listens there?)");
}

void ProxyServer::Serve() { server_->listen_after_bind(); }

bool ProxyServer::running() const { return server_->is_running(); }

ConnectionCounts ProxyServer::Connections() const { return server_->Connections(); }

void ProxyServer::Stop() {
  if (server_) server_->stop();
}

void ProxyServer::Track(Exchange* ex, bool alive) {
  {
    MutexLock lock(live_mu_);
    if (ex && alive) live_.insert(ex);
    if (ex && !alive) live_.erase(ex);
    active_ += alive ? 1 : -1;
  }
  live_changed_.notify_all();
}

bool ProxyServer::Drain(std::chrono::seconds timeout,
                        std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(live_mu_);
  if (live_changed_.wait_for(lock, timeout, [&]() REQUIRES(live_mu_) { return active_ == 0; }))
    return true;
  spdlog::warn("{} requests still running after {} s: cancelling them", active_, timeout.count());
  for (Exchange* ex : live_) ex->pipe.Abandon();
  if (live_changed_.wait_until(lock, deadline, [&]() REQUIRES(live_mu_) { return active_ == 0; }))
    return true;
  spdlog::warn("{} requests still running at the stop deadline", active_);
  return false;
}

namespace {

// The browser rules (see browser_policy.h), and CORS headers for an allowed
// origin. Health probes are exempt: orchestrators send them by whatever
// address they know, and they reveal nothing. The status page calls the
// admin API from agentkv's own origin: no CORS headers are needed for that.
Status CheckBrowser(const BrowserPolicy& policy, const httplib::Request& req, const Route& route,
                    httplib::Response& res) {
  if (route.kind == RouteKind::kLiveness || route.kind == RouteKind::kReadiness) {
    return Status::Ok();
  }
  const std::string host = req.get_header_value("Host");
  if (Status s = CheckHost(policy, host); !s.ok()) return s;
  const std::string origin = req.get_header_value("Origin");
  if (route.kind == RouteKind::kAdmin && IsOwnOrigin(policy, origin, host)) return Status::Ok();
  if (Status s = CheckOrigin(policy, origin); !s.ok()) return s;
  if (!AllowsOrigin(policy, origin)) return Status::Ok();
  for (const auto& [name, value] :
       CorsHeaders(origin, route.kind == RouteKind::kPreflight,
                   req.get_header_value("Access-Control-Request-Headers"))) {
    res.set_header(name, value);
  }
  return Status::Ok();
}

}  // namespace

bool ProxyServer::PreRoute(const httplib::Request& req, httplib::Response& res) {
  Status s = CheckHead(req, LimitsOf(options_));
  const ConnectionContext* c = ConnectionContext::Current();
  if (s.ok() && c && c->folded_head()) {
    s = Error(ErrorCode::kInvalidArgument,
              "a header line begins with a space or a tab (a folded header): not accepted");
  }
  if (s.ok() && c && c->overflow_only()) {
    const RouteKind kind = MatchRoute(req.method, RawPath(req)).kind;
    if (kind != RouteKind::kLiveness && kind != RouteKind::kReadiness &&
        kind != RouteKind::kMetrics) {
      s = Error(ErrorCode::kBusy, "too many connections: retry later");
    }
  }
  if (s.ok()) return false;
  CloseUnread(req, res);
  ReplyError(res, s);
  metrics_.CountRequest(RouteLabel(MatchRoute(req.method, RawPath(req))), res.status);
  return true;
}

Status ProxyServer::ReadRequestBody(const httplib::Request& req, const httplib::ContentReader& read,
                                    std::size_t max_bytes, std::string* body) {
  const std::string length = req.get_header_value("Content-Length");
  if (!length.empty()) {  // digits, within max_body_bytes (CheckHead)
    const std::size_t announced = std::stoull(length);
    if (announced > max_bytes) return TooLarge(max_bytes);
    body->reserve(announced);
  }
  Status s = ReadBody(read, max_bytes, body);
  if (s.ok()) return s;
  const ConnectionContext* c = ConnectionContext::Current();
  const StreamFault fault = c ? c->fault() : StreamFault::kNone;
  if (fault == StreamFault::kTimedOut) {
    return Error(ErrorCode::kTimeout, "request body was not received in time");
  }
  if (fault == StreamFault::kBodyTooLarge) return TooLarge(options_.max_body_bytes);
  return s;
}

void ProxyServer::Handle(const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader* read) {
  // Counted while the handler runs (placement included); its exchange, if
  // any, is counted from inside it until the response is written.
  Track(nullptr, true);
  agentkv::Route route;
  struct Done {
    ProxyServer* server;
    const agentkv::Route& route;
    const httplib::Response& res;
    ~Done() {
      server->metrics_.CountRequest(RouteLabel(route), res.status);
      server->Track(nullptr, false);
    }
  } done{this, route, res};
  const std::string raw_path = RawPath(req);
  // Routing reads the path as llama-server will decode it; with escapes the
  // two could disagree (/v1/chat/completion%73 is /v1/chat/completions), so
  // none are accepted. No route or agent id needs one.
  if (raw_path.find('%') != std::string::npos) {
    CloseUnread(req, res);
    return ReplyError(
        res, Error(ErrorCode::kInvalidArgument, "percent-encoded request paths are not accepted"));
  }
  route = MatchRoute(req.method, raw_path);
  if (Status s = CheckBrowser(options_.browser, req, route, res); !s.ok()) {
    CloseUnread(req, res);
    return ReplyError(res, s);
  }
  // The key is checked before the body is read: a client without one
  // cannot make agentkv read, let alone hold, a body.
  if (Status s = Authorize(options_.auth, route.kind, req.get_header_value("Authorization"));
      !s.ok()) {
    if (s.code() == ErrorCode::kUnauthorized) res.set_header("WWW-Authenticate", "Bearer");
    CloseUnread(req, res);
    return ReplyError(res, s);
  }
  std::optional<AgentId> path_agent;
  if (route.path_agent) {
    Result<AgentId> id = ParsePathAgent(*route.path_agent, route.kind == RouteKind::kAdmin);
    if (!id.ok()) {
      CloseUnread(req, res);
      return ReplyError(res, id.status());
    }
    path_agent = id.value();
  }
  std::string body;
  if (read && AnnouncesBody(req)) {
    if (Status s = ReadRequestBody(req, *read, MaxBodyOf(options_, route), &body); !s.ok()) {
      CloseUnread(req, res);  // the rest of it was not read
      return ReplyError(res, s);
    }
  }
  // Whatever its Content-Type: agentkv parses inference and admin bodies,
  // and llama-server parses every body it is sent as JSON.
  if (!body.empty()) {
    if (Status s = CheckJsonShape(body, LimitsOf(options_)); !s.ok()) return ReplyError(res, s);
  }
  if (Status s = Route(req, body, res, route, path_agent); !s.ok()) {
    return ReplyError(res, s);
  }
}

Status ProxyServer::Route(const httplib::Request& req, const std::string& body,
                          httplib::Response& res, const agentkv::Route& route,
                          const std::optional<AgentId>& path_agent) {
  switch (route.kind) {
    case RouteKind::kSlotAction:
      return Error(ErrorCode::kForbidden,
                   "slot actions are reserved to agentkv, which manages the slots; use the "
                   "agent routes instead");
    case RouteKind::kUnsupported:
      return Error(ErrorCode::kUnsupported,
                   route.upstream_path +
                       " is not supported through agentkv: llama-server would run it on a slot "
                       "agentkv cannot choose; use /v1/chat/completions");
    case RouteKind::kInference:
      return HandleInference(req, body, res, UpstreamTarget(req, route), path_agent);
    case RouteKind::kAdmin: {
      if (route.admin == AdminAction::kNone) {
        return Error(ErrorCode::kNotFound,
                     "no admin route " + req.method + " " + route.upstream_path);
      }
      // A page can POST text/plain anywhere without a preflight; JSON it cannot.
      if (req.method == "POST") {
        if (Status s = RequireJson(req.get_header_value("Content-Type")); !s.ok()) return s;
      }
      const std::size_t q = req.target.find('?');
      Result<json> answer = admin_.Handle(route.admin, path_agent, body,
                                          q == std::string::npos ? "" : req.target.substr(q + 1));
      if (!answer.ok()) return answer.status();
      res.set_content(answer->dump(), "application/json");
      return Status::Ok();
    }
    case RouteKind::kLiveness:
      res.set_content(R"({"status":"ok"})", "application/json");
      return Status::Ok();
    case RouteKind::kReadiness:
      if (!hooks_.gauges().upstream_up) {
        const std::string why = hooks_.upstream_problem ? hooks_.upstream_problem() : "";
        return Error(ErrorCode::kUnavailable,
                     "llama-server is not ready" + (why.empty() ? "" : ": " + why));
      }
      res.set_content(R"({"status":"ready"})", "application/json");
      return Status::Ok();
    case RouteKind::kMetrics: {
      GaugeSnapshot g = hooks_.gauges();
      const ConnectionCounts c = server_->Connections();
      g.connections = c.open;
      g.connections_refused = c.refused;
      res.set_content(metrics_.Render(g), "text/plain; version=0.0.4; charset=utf-8");
      return Status::Ok();
    }
    case RouteKind::kStatusPage: {
      std::optional<StaticAnswer> file =
          StatusPageFile(route.upstream_path, !options_.auth.admin_key.empty());
      if (!file) {
        return Error(ErrorCode::kNotFound, "the status page has no " + route.upstream_path);
      }
      for (const auto& [name, value] : file->headers) res.set_header(name, value);
      res.set_content(file->body, file->content_type);
      return Status::Ok();
    }
    case RouteKind::kPreflight:  // CheckBrowser set the CORS headers
      res.status = 204;
      res.set_header("Allow", "GET, POST, DELETE, OPTIONS");
      return Status::Ok();
    case RouteKind::kUnknown:
      return Error(ErrorCode::kNotFound,
                   req.method + " " + route.upstream_path +
                       " is not a llama-server route agentkv passes through (see README, "
                       "Browsers and global routes)");
    case RouteKind::kReadOnly:
    case RouteKind::kGlobal:
      break;
  }
  return Respond(Start(ForwardOf(req, UpstreamTarget(req, route), body), std::nullopt,
                       std::chrono::steady_clock::now()),
                 res);
}

// A new agent that starts from a copy of another's memory (a planner's
// sub-agent): X-Agentkv-Parent names the other, under the same API key.
Status ProxyServer::SpawnFrom(const std::string& parent_id, const AgentId& child,
                              const std::string& scope) {
  Result<AgentId> parent = AgentId::Parse(parent_id);
  if (!parent.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(kParentHeader) + ": " + parent.status().message());
  }
  Status s = admin_.Spawn(child, InKeyNamespace(parent.value(), scope), scope);
  if (s.code() == ErrorCode::kNotFound) {  // named as the client named it
    return Error(ErrorCode::kNotFound,
                 "no agent " + parent->str() + " to start from" +
                     (options_.auth.api_keys.empty() ? "" : " under this API key"));
  }
  return s;
}

AgentId ProxyServer::InKeyNamespace(const AgentId& id, const std::string& scope) const {
  if (!options_.agents_per_key || options_.auth.api_keys.empty()) return id;
  return AgentId::InNamespace(id, scope);
}

Status ProxyServer::HandleInference(const httplib::Request& req, const std::string& raw_body,
                                    httplib::Response& res, const std::string& upstream_target,
                                    const std::optional<AgentId>& path_agent) {
  const auto arrival = std::chrono::steady_clock::now();
  json body = json::parse(raw_body, nullptr, false);
  if (body.is_discarded())
    return Error(ErrorCode::kInvalidArgument, "request body is not valid JSON");
  if (Status s = CheckInferenceBody(body); !s.ok()) return s;
  Result<std::optional<NextHint>> next = ParseNextHint(req.get_header_value(kNextHeader));
  if (!next.ok()) return next.status();
  std::optional<std::string> header_agent;
  if (req.has_header("X-Agent-Id")) header_agent = req.get_header_value("X-Agent-Id");
  Result<Tenant> tenant = ResolveTenant(path_agent, header_agent, &body);
  if (!tenant.ok()) return tenant.status();
  if (!tenant.value() && req.has_header(kParentHeader)) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(kParentHeader) + " needs an agent id for the new agent");
  }
  // Media in a slot cannot be saved, and what cannot be saved must not stay
  // for the agent's next turn either: the slot is erased after this one.
  if (!options_.persist || CarriesMedia(body)) tenant = Tenant{};

  // Turn-end saves wait until this request's first token (or a bound).
  Placer::PrefillTicket prefill = placer_.Prefilling();
  if (!hooks_.wait_upstream()) return Error(ErrorCode::kUnavailable, "llama-server is down");
  const PromptKey prompt_key = PromptKeyOf(body);
  const std::string scope = ScopeOfRequest(options_.auth, req.get_header_value("Authorization"));
  ClaimHold claim;
  if (tenant.value()) {
    tenant = Tenant(InKeyNamespace(*tenant.value(), scope));
    claim = admin_.Claim(*tenant.value(), scope);
    // One namespace for all keys: an agent is served to its first key only
    // (the claim that won, or its memory's scope).
    if (Status s = admin_.CheckOwner(*tenant.value(), scope); !s.ok()) return s;
    int retry_after = 0;
    // Known() may read a shared directory: asked only when there is a limit.
    if (options_.max_new_agents_per_minute > 0 && !admin_.Known(*tenant.value()) &&
        !new_agents_.Take(scope, std::chrono::steady_clock::now(), &retry_after)) {
      metrics_.new_agents_refused++;
      res.set_header("Retry-After", std::to_string(retry_after));
      return Error(ErrorCode::kRateLimited,
                   "this API key started " + std::to_string(options_.max_new_agents_per_minute) +
                       " new agents in the last minute: retry in " + std::to_string(retry_after) +
                       " s, or reuse an agent id");
    }
  }
  if (tenant.value() && req.has_header(kParentHeader)) {
    if (Status s = SpawnFrom(req.get_header_value(kParentHeader), *tenant.value(), scope);
        !s.ok()) {
      return s;
    }
  }
  std::optional<NewAgentPrompt> new_agent;
  if (tenant.value() && hooks_.prefixes && raw_body.size() <= kMaxPrefixBodyBytes) {
    new_agent = hooks_.prefixes->Prepare(*tenant.value(), scope, body);
  }
  PrefixChoice prefix;
  Placer::StartFrom start_from;
  if (new_agent) {
    start_from = [&] {
      prefix = hooks_.prefixes->Choose(*new_agent);
      return prefix.start_from;
    };
  }
  Result<Lease> lease = placer_.Place(tenant.value(), start_from);
  if (!lease.ok() && lease.status().code() == ErrorCode::kUpstreamDown &&
      hooks_.upstream_unreachable) {
    // llama-server died while the slot was being prepared, before the health
    // watch noticed: wait for its restart as a request arriving then would,
    // and place again (the slot it held is gone with it).
    hooks_.upstream_unreachable();
    if (!hooks_.wait_upstream()) return Error(ErrorCode::kUnavailable, "llama-server is down");
    lease = placer_.Place(tenant.value(), start_from);
  }
  if (!lease.ok()) return lease.status();
  if (new_agent) {
    Status built = hooks_.prefixes->Build(lease.value(), prefix, new_agent->tokens, prompt_key);
    if (!built.ok()) return built;
  }
  PinToSlot(body, lease->slot());
  res.set_header("X-Agentkv-Slot", std::to_string(lease->slot().value));
  res.set_header("X-Agentkv-Placement", PlacementName(lease->placement()));
  return Respond(Start(ForwardOf(req, upstream_target, body.dump()), std::move(lease.value()),
                       arrival, prompt_key, std::move(prefill), std::move(claim), next.value()),
                 res);
}

namespace {

// What the request left in its slot. llama-server checks a request before
// it runs it: a 4xx means the slot's KV was not touched. A 5xx may come
// from a failed decode after the slot was trimmed, and any other end
// without timings (the client left, the connection dropped) may have
// changed the KV by an unknown amount.
TurnEnd TurnEndOf(int status, const Status& result, const std::optional<Timings>& t,
                  PromptKey key) {
  if (status >= 400 && status < 500) return TurnEnd::Unchanged();
  if (!t || !result.ok()) return TurnEnd{true, std::nullopt, key};
  TurnEnd end = TurnEnd::Ran(t->cache_n + t->prompt_n + t->predicted_n, key);
  end.added_nothing = t->prompt_n <= 1 && t->predicted_n <= 1;
  return end;
}

}  // namespace

std::shared_ptr<ProxyServer::Exchange> ProxyServer::Start(
    ForwardRequest request, std::optional<Lease> lease,
    std::chrono::steady_clock::time_point arrival, PromptKey prompt_key,
    Placer::PrefillTicket prefill, ClaimHold claim, std::optional<NextHint> next) {
  auto ex = std::make_shared<Exchange>(this);
  Exchange* raw = ex.get();  // outlives the worker: ~Exchange joins it
  ex->worker = std::thread([this, raw, arrival, prompt_key, next, request = std::move(request),
                            lease = std::move(lease), prefill = std::move(prefill),
                            claim = std::move(claim)]() mutable {
    Status result;
    std::optional<Timings> timings;
    int status = 0;
    std::optional<std::chrono::steady_clock::time_point> first_byte;
    try {
      result = Exchange::Forward(upstream_, request, lease, raw->pipe, &timings, &status,
                                 &first_byte, &prefill);
      // Unreachable (not cancelled by its client): /readyz turns 503 now,
      // not at the next health check.
      if (result.code() == ErrorCode::kUpstreamDown && status == 0 &&
          !raw->pipe.cancel_token().cancelled() && hooks_.upstream_unreachable) {
        hooks_.upstream_unreachable();
      }
      prefill.End();  // the answer is over, with or without a first byte
      if (lease && first_byte) {
        metrics_.ObserveTtft(PlacementName(lease->placement()), *first_byte - arrival);
      }
    } catch (const std::exception& e) {
      spdlog::error("{} {} failed: {}", request.method, EscapeForLog(request.path),
                    EscapeForLog(e.what()));
      result = Status::Error(ErrorCode::kInternal, e.what());
    }
    if (lease) {  // before the client sees the end
      // No timings: an error answer, or one that did not end as llama-server
      // ends one (the client left, the exchange broke).
      const TurnFinish finish = timings         ? timings->finish
                                : status >= 400 ? TurnFinish::kUnknown
                                                : TurnFinish::kAborted;
      TurnEnd end = TurnEndOf(status, result, timings, prompt_key);
      std::optional<std::chrono::milliseconds> tool_gap;
      if (hooks_.activity && lease->tenant()) {
        tool_gap = hooks_.activity->TypicalGap(*lease->tenant(), TurnFinish::kToolCalls);
      }
      std::tie(end.expect, end.back_in) =
          ExpectationOf(finish, next, tool_gap.value_or(kDefaultToolGap));
      placer_.Finish(*lease, timings ? std::optional<long long>(timings->cache_n) : std::nullopt,
                     timings ? timings->prompt_n : 0, end);
      if (hooks_.activity) Record(*lease, status, timings, arrival, first_byte, finish, next);
    }
    claim.Reset();  // the turn is recorded: a save to come is the slot's
    raw->pipe.Finish(std::move(result));
  });
  return ex;
}

void ProxyServer::Record(const Lease& lease, int status, const std::optional<Timings>& timings,
                         std::chrono::steady_clock::time_point arrival,
                         std::optional<std::chrono::steady_clock::time_point> first_byte,
                         TurnFinish finish, const std::optional<NextHint>& next) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  RequestRecord r;
  r.agent = lease.tenant();
  r.slot = lease.slot();
  r.placement = lease.placement();
  r.status = status;
  if (timings) {
    r.cache_n = timings->cache_n;
    r.prompt_n = timings->prompt_n;
  }
  if (first_byte) r.ttft = duration_cast<milliseconds>(*first_byte - arrival);
  r.total = duration_cast<milliseconds>(std::chrono::steady_clock::now() - arrival);
  r.finish = finish;
  r.next = next;
  if (std::optional<Return> back = hooks_.activity->Record(std::move(r))) {
    metrics_.ObserveReturnGap(FinishName(back->after), milliseconds(back->gap_ms));
  }
}

Status ProxyServer::Respond(std::shared_ptr<Exchange> ex, httplib::Response& res) {
  int status = 0;
  HeaderList headers;
  if (!ex->pipe.WaitHeaders(&status, &headers)) return ex->pipe.final_status();
  res.status = status;
  for (const auto& [name, value] : headers) {
    if (!IsHopHeader(name) && ForwardsResponseHeader(name)) res.set_header(name, value);
  }
  const std::string content_type = HeaderValue(headers, "Content-Type");
  const bool events = content_type.rfind("text/event-stream", 0) == 0;
  const std::string length = HeaderValue(headers, "Content-Length");
  const bool sized = !events && !length.empty() && length.size() <= 19 &&
                     length.find_first_not_of("0123456789") == std::string::npos;
  // Writes what the pipe brings; false if the client left or the answer
  // ended early. An event stream ends with an error event instead. The
  // last chunk of an answer with a length is held until the exchange has
  // ended: its client, which stops reading there, must find the turn
  // recorded (the stream's end is its chunked terminator, written after).
  auto relay = [ex, events](httplib::DataSink& sink, std::size_t* written) {
    std::string chunk, held;
    auto write = [&](const std::string& data) {
      if (data.empty() || sink.write(data.data(), data.size())) {
        *written += data.size();
        return true;
      }
      ex->pipe.Abandon();  // the client left: cancel upstream
      return false;
    };
    while (ex->pipe.NextChunk(&chunk)) {
      if (!write(events ? chunk : held)) return false;
      if (!events) held = std::move(chunk);
    }
    const Status end = ex->pipe.final_status();
    if (end.ok()) return write(held);
    if (!events) return false;  // the client sees the answer cut short
    const std::string event = "data: " + ErrorJson(end) + "\n\n";
    sink.write(event.data(), event.size());
    return true;
  };
  const std::size_t total = sized ? std::stoull(length) : 0;
  if (sized && total == 0) {  // httplib takes a provider of 0 bytes for one without a length
    std::string chunk;
    while (ex->pipe.NextChunk(&chunk)) {
    }
    if (Status end = ex->pipe.final_status(); !end.ok()) return end;
    res.set_content("", content_type);
    return Status::Ok();
  }
  if (sized) {  // the framing llama-server chose, and the length it said
    res.set_content_provider(total, content_type,
                             [relay, total](size_t, size_t, httplib::DataSink& sink) {
                               std::size_t written = 0;
                               return relay(sink, &written) && written == total;
                             });
    return Status::Ok();
  }
  res.set_chunked_content_provider(content_type, [relay](size_t, httplib::DataSink& sink) {
    std::size_t written = 0;
    if (!relay(sink, &written)) return false;
    sink.done();
    return true;
  });
  return Status::Ok();
}

}  // namespace agentkv

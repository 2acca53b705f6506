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

}  // namespace

ProxyServer::ProxyServer(ProxyOptions options, Upstream& upstream, Placer& placer, AdminApi& admin,
                         Metrics& metrics, Hooks hooks)
    : options_(std::move(options)),
      admin_(admin),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      server_(std::make_unique<FrontServer>(ConnectionLimitsOf(options_))),
      exchange_(
          options_, upstream, placer, admin, metrics,
          {hooks_.wait_upstream, hooks_.upstream_unreachable, hooks_.prefixes, hooks_.activity}) {
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

bool ProxyServer::Drain(std::chrono::seconds timeout,
                        std::chrono::steady_clock::time_point deadline) {
  return exchange_.Drain(timeout, deadline);
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
  exchange_.CountHandler(true);
  agentkv::Route route;
  struct Done {
    ProxyServer* server;
    const agentkv::Route& route;
    const httplib::Response& res;
    ~Done() {
      server->metrics_.CountRequest(RouteLabel(route), res.status);
      server->exchange_.CountHandler(false);
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
      return exchange_.Turn(req, body, res, UpstreamTarget(req, route), path_agent);
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
                       " is not a llama-server route agentkv passes through (docs/operations.md: "
                       "Browsers and global routes)");
    case RouteKind::kReadOnly:
    case RouteKind::kGlobal:
      break;
  }
  return exchange_.Pass(req, body, res, UpstreamTarget(req, route));
}

}  // namespace agentkv

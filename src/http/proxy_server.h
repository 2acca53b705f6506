#pragma once
// The http front: the only code that knows HTTP on the client side. Routes
// each request (routes.h), applies the browser rules and the API keys, reads
// the body within its limits and answers agentkv's own routes (admin,
// health, metrics, status page); inference and llama-server's routes go on
// to the inference exchange (inference_exchange.h), which places the agent,
// forwards and streams. Bind() and Serve() are called once; Stop() may be
// called from any thread.
//
// Bounds, in the order a request arrives (see front_server.h for the
// connections themselves): the head is checked as soon as it is parsed
// (request_limits.h), the route and the API key next, and only then is the
// body read, counted as it arrives and refused at its route's limit before
// it is all in memory; its JSON shape (nesting, number of values) is checked
// in one pass that builds nothing before any route parses or forwards it.
// Answers are streamed to the client as they arrive, never held whole; a
// client that reads them more slowly than llama-server writes is cut off
// once max_unsent_answer_bytes wait for it.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/activity.h"
#include "core/metrics.h"
#include "core/placer.h"
#include "http/admin_api.h"
#include "http/connection_limits.h"
#include "http/inference_exchange.h"
#include "http/prefix_path.h"
#include "http/proxy_options.h"
#include "http/routes.h"
#include "upstream/upstream.h"

namespace httplib {
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace agentkv {

class FrontServer;

class ProxyServer {
 public:
  struct Hooks {
    std::function<GaugeSnapshot()> gauges;  // for /metrics and /readyz
    // Blocks while llama-server is down, within bounds; false: still down.
    std::function<bool()> wait_upstream;
    // A request could not reach llama-server: have it checked now (see
    // UpstreamSupervisor::Suspect). Null: nothing to tell.
    std::function<void()> upstream_unreachable;
    // Why llama-server is down, when known (UpstreamSupervisor::Problem),
    // for /readyz; null or empty: not known.
    std::function<std::string()> upstream_problem;
    // New agents start from prefix snapshots; null: they start empty.
    PrefixPath* prefixes = nullptr;
    // Where each request that ran on a slot is recorded; null: nowhere.
    Activity* activity = nullptr;
  };
  ProxyServer(ProxyOptions options, Upstream& upstream, Placer& placer, AdminApi& admin,
              Metrics& metrics, Hooks hooks);
  ~ProxyServer();

  // Returns the bound port, or kConflict if the address cannot be bound.
  Result<int> Bind();
  // Serves until Stop(). Blocks.
  void Serve();
  // True once Serve() accepts connections; Stop() before that is lost.
  bool running() const;
  // Waits up to `timeout` for requests in flight to finish, then cancels
  // the rest (their upstream connections are closed) and waits for them
  // until `deadline`. Returns false if some were still running then. Call
  // before Stop(): httplib cuts streams still being written when it stops.
  bool Drain(std::chrono::seconds timeout, std::chrono::steady_clock::time_point deadline);
  // Stops accepting connections.
  void Stop();
  // Connections open now, and refused since the start.
  ConnectionCounts Connections() const;

 private:
  Result<int> BindPort();
  // Before any body byte is read: refuses a head over its limits, and
  // anything but a control route on a connection past a cap.
  bool PreRoute(const httplib::Request& req, httplib::Response& res);
  // `read`: the body's reader (null for methods without a body).
  void Handle(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader* read);
  // Reads the body within `max_bytes` into *body.
  Status ReadRequestBody(const httplib::Request& req, const httplib::ContentReader& read,
                         std::size_t max_bytes, std::string* body);
  // Handlers write a success to `res` and return an error as a Status,
  // which Handle() alone turns into an HTTP answer.
  Status Route(const httplib::Request& req, const std::string& body, httplib::Response& res,
               const agentkv::Route& route, const std::optional<AgentId>& path_agent);

  ProxyOptions options_;
  AdminApi& admin_;
  Metrics& metrics_;
  const Hooks hooks_;
  std::unique_ptr<FrontServer> server_;
  InferenceExchange exchange_;
};

}  // namespace agentkv

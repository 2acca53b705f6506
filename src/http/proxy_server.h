#pragma once
// The http front: the only code that knows HTTP on the client side. Resolves
// the agent, asks the Placer for a slot, forwards the request to llama-server
// pinned to that slot and streams the answer back chunk by chunk.
// Bind() and Serve() are called once; Stop() may be called from any thread.
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
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agentkv/mutex.h"
#include "core/activity.h"
#include "core/metrics.h"
#include "core/placer.h"
#include "core/rate_limit.h"
#include "http/admin_api.h"
#include "http/auth.h"
#include "http/browser_policy.h"
#include "http/connection_limits.h"
#include "http/prefix_path.h"
#include "http/routes.h"
#include "upstream/upstream.h"

namespace httplib {
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace agentkv {

class FrontServer;
struct Timings;

struct ProxyOptions {
  std::string host = "127.0.0.1";
  int port = 8090;                         // 0: any free port
  std::size_t max_body_bytes = 16u << 20;  // decoded, whatever its framing
  // The same for routes passed through to llama-server (/tokenize,
  // /apply-template...): none needs a conversation's media.
  std::size_t max_passthrough_body_bytes = 2u << 20;
  std::size_t max_headers = 100;         // header fields of a request
  int max_json_depth = 128;              // nesting of a JSON body
  std::size_t max_json_values = 262144;  // values in a JSON body, keys included
  // What an answer may hold unsent for a client that reads it too slowly.
  std::size_t max_unsent_answer_bytes = 8u << 20;
  // Requests for agents agentkv does not know (neither resident nor saved),
  // per API key (tenant) and minute; more get 429. 0: no limit.
  int max_new_agents_per_minute = 600;
  AuthPolicy auth;  // API keys and the admin key
  // What web pages may do: Host allow-list, CORS origins.
  BrowserPolicy browser;
  // Connections at once, per client, deadlines, keep-alive.
  ConnectionLimits connections;
  // False: agentkv cannot keep this model's KV (see ServingMode); every
  // request is served stateless, whatever agent it names.
  bool persist = true;
  // With API keys: each key has its own agents (the same id under two keys
  // is two agents). False: one namespace shared by all keys.
  bool agents_per_key = true;
};

// Names the agent whose memory a new agent starts from (see README).
inline constexpr char kParentHeader[] = "X-Agentkv-Parent";

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

  // Returns the bound port, or kIo if the address cannot be bound.
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
  struct Exchange;
  Result<int> BindPort();
  // Counts a request in flight (ex: null for a handler) in or out.
  void Track(Exchange* ex, bool alive);
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
  Status HandleInference(const httplib::Request& req, const std::string& raw_body,
                         httplib::Response& res, const std::string& upstream_target,
                         const std::optional<AgentId>& path_agent);
  Status SpawnFrom(const std::string& parent_id, const AgentId& child, const std::string& scope);
  // The agent a client's id names under the key of `scope` (see
  // agents_per_key).
  AgentId InKeyNamespace(const AgentId& id, const std::string& scope) const;
  Status Route(const httplib::Request& req, const std::string& body, httplib::Response& res,
               const agentkv::Route& route, const std::optional<AgentId>& path_agent);
  // Forwards `request` on a worker thread that holds `lease` until the
  // upstream answer is complete; `arrival` starts the TTFT clock, and
  // `prefill` ends at the answer's first byte.
  // `claim` is held until then too.
  std::shared_ptr<Exchange> Start(ForwardRequest request, std::optional<Lease> lease,
                                  std::chrono::steady_clock::time_point arrival,
                                  PromptKey prompt_key = 0, Placer::PrefillTicket prefill = {},
                                  ClaimHold claim = {}, std::optional<NextHint> next = {});
  // Adds a request that ran on `lease`'s slot to hooks_.activity, with how
  // it ended and what it said of the agent's next, before its client sees
  // the end of the answer; an agent's return goes to the gap histogram.
  void Record(const Lease& lease, int status, const std::optional<Timings>& timings,
              std::chrono::steady_clock::time_point arrival,
              std::optional<std::chrono::steady_clock::time_point> first_byte, TurnFinish finish,
              const std::optional<NextHint>& next);
  // Writes the exchange's answer to `res`: streamed if it is an event
  // stream. Returns the error if the exchange failed before any answer.
  Status Respond(std::shared_ptr<Exchange> ex, httplib::Response& res);

  ProxyOptions options_;
  Upstream& upstream_;
  Placer& placer_;
  AdminApi& admin_;
  Metrics& metrics_;
  const Hooks hooks_;
  std::unique_ptr<FrontServer> server_;
  RateLimit new_agents_;
  Mutex live_mu_;
  std::condition_variable_any live_changed_;
  std::set<Exchange*> live_ GUARDED_BY(live_mu_);
  int active_ GUARDED_BY(live_mu_) = 0;
};

}  // namespace agentkv

#pragma once
// The inference exchange: what happens to a request once the front
// (proxy_server.h) has routed it, checked its key and read its body. For an
// agent's turn: which agent (id, API key namespace, parent), its placement
// (Placer), the request forwarded to llama-server pinned to the slot, the
// answer streamed back chunk by chunk, and how the turn ended recorded
// before the client sees its end. A llama-server route passed through takes
// only the forward and the stream, on no slot.
// Thread-safe: the front calls it from every connection's thread.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "agentkv/mutex.h"
#include "core/activity.h"
#include "core/metrics.h"
#include "core/placer.h"
#include "core/rate_limit.h"
#include "http/admin_api.h"
#include "http/next_hint.h"
#include "http/prefix_path.h"
#include "http/proxy_options.h"
#include "upstream/upstream.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace agentkv {

struct Timings;

// Names the agent whose memory a new agent starts from: a planner's
// sub-agent starts with what the planner knows.
inline constexpr char kParentHeader[] = "X-Agentkv-Parent";

class InferenceExchange {
 public:
  struct Hooks {
    // Blocks while llama-server is down, within bounds; false: still down.
    std::function<bool()> wait_upstream;
    // A request could not reach llama-server: have it checked now. Null:
    // nothing to tell.
    std::function<void()> upstream_unreachable;
    PrefixPath* prefixes = nullptr;  // null: new agents start empty
    Activity* activity = nullptr;    // null: requests are not recorded
  };
  // `options` must outlive this.
  InferenceExchange(const ProxyOptions& options, Upstream& upstream, Placer& placer,
                    AdminApi& admin, Metrics& metrics, Hooks hooks);

  // An inference request (`raw_body` checked as JSON within the limits):
  // places its agent and answers into `res`, streamed if llama-server
  // streams. `path_agent`: the agent /agents/{id}/ names. Returns an error
  // for the front to answer, if it fails before any answer.
  Status Turn(const httplib::Request& req, const std::string& raw_body, httplib::Response& res,
              const std::string& upstream_target, const std::optional<AgentId>& path_agent);
  // A llama-server route passed through, on no slot.
  Status Pass(const httplib::Request& req, const std::string& body, httplib::Response& res,
              const std::string& upstream_target);

  // Counts a front handler in flight in or out: Drain() waits for them too.
  void CountHandler(bool running) { Track(nullptr, running); }
  // Waits up to `timeout` for requests in flight to finish, then cancels
  // the rest (their upstream connections are closed) and waits for them
  // until `deadline`. Returns false if some were still running then.
  bool Drain(std::chrono::seconds timeout, std::chrono::steady_clock::time_point deadline);

 private:
  struct Exchange;
  // Counts a request in flight (ex: null for a handler) in or out.
  void Track(Exchange* ex, bool alive);
  Status SpawnFrom(const std::string& parent_id, const AgentId& child, const std::string& scope);
  // The agent a client's id names under the key of `scope` (see
  // ProxyOptions::agents_per_key).
  AgentId InKeyNamespace(const AgentId& id, const std::string& scope) const;
  // Forwards `request` on a worker thread that holds `lease` until the
  // upstream answer is complete; `arrival` starts the TTFT clock, and
  // `prefill` ends at the answer's first byte. `claim` is held until then too.
  std::shared_ptr<Exchange> Start(ForwardRequest request, std::optional<Lease> lease,
                                  std::chrono::steady_clock::time_point arrival,
                                  PromptKey prompt_key = 0, Placer::PrefillTicket prefill = {},
                                  ClaimHold claim = {}, std::optional<NextHint> next = {});
  // Adds a request that ran on `lease`'s slot to hooks_.activity, with how
  // it ended and what it said of the agent's next; an agent's return goes
  // to the gap histogram.
  void Record(const Lease& lease, int status, const std::optional<Timings>& timings,
              std::chrono::steady_clock::time_point arrival,
              std::optional<std::chrono::steady_clock::time_point> first_byte, TurnFinish finish,
              const std::optional<NextHint>& next);
  // Writes the exchange's answer to `res`: streamed if it is an event
  // stream. Returns the error if the exchange failed before any answer.
  Status Respond(std::shared_ptr<Exchange> ex, httplib::Response& res);

  const ProxyOptions& options_;
  Upstream& upstream_;
  Placer& placer_;
  AdminApi& admin_;
  Metrics& metrics_;
  const Hooks hooks_;
  RateLimit new_agents_;
  Mutex live_mu_;
  std::condition_variable_any live_changed_;
  std::set<Exchange*> live_ GUARDED_BY(live_mu_);
  int active_ GUARDED_BY(live_mu_) = 0;
};

}  // namespace agentkv

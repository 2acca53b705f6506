#include "http/inference_exchange.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "http/auth.h"
#include "http/http_errors.h"
#include "http/identity.h"
#include "http/llama_fields.h"
#include "http/log_text.h"
#include "http/response_pipe.h"
#include "http/routes.h"

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

std::string HeaderValue(const HeaderList& headers, const char* name) {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return "";
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
struct InferenceExchange::Exchange {
  explicit Exchange(InferenceExchange* exchange)
      : owner(exchange), pipe(exchange->options_.max_unsent_answer_bytes) {
    owner->Track(this, true);
  }
  ~Exchange() {
    pipe.Abandon();
    if (worker.joinable()) worker.join();
    owner->Track(this, false);
  }

  InferenceExchange* const owner;
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
      result = Status::Error(ErrorCode::kTimeout, "the client read the answer too slowly");
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

void InferenceExchange::Track(Exchange* ex, bool alive) {
  {
    MutexLock lock(live_mu_);
    if (ex && alive) live_.insert(ex);
    if (ex && !alive) live_.erase(ex);
    active_ += alive ? 1 : -1;
  }
  live_changed_.notify_all();
}

bool InferenceExchange::Drain(std::chrono::seconds timeout,
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

// A new agent that starts from a copy of another's memory (a planner's
// sub-agent): X-Agentkv-Parent names the other, under the same API key.
Status InferenceExchange::SpawnFrom(const std::string& parent_id, const AgentId& child,
                                    const std::string& scope) {
  Result<AgentId> parent = AgentId::Parse(parent_id);
  if (!parent.ok()) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         std::string(kParentHeader) + ": " + parent.status().message());
  }
  Status s = admin_.Spawn(child, InKeyNamespace(parent.value(), scope), scope);
  if (s.code() == ErrorCode::kNotFound) {  // named as the client named it
    return Status::Error(ErrorCode::kNotFound,
                         "no agent " + parent->str() + " to start from" +
                             (options_.auth.api_keys.empty() ? "" : " under this API key"));
  }
  return s;
}

AgentId InferenceExchange::InKeyNamespace(const AgentId& id, const std::string& scope) const {
  if (!options_.agents_per_key || options_.auth.api_keys.empty()) return id;
  return AgentId::InNamespace(id, scope);
}

Status InferenceExchange::Turn(const httplib::Request& req, const std::string& raw_body,
                               httplib::Response& res, const std::string& upstream_target,
                               const std::optional<AgentId>& path_agent) {
  const auto arrival = std::chrono::steady_clock::now();
  json body = json::parse(raw_body, nullptr, false);
  if (body.is_discarded())
    return Status::Error(ErrorCode::kInvalidArgument, "request body is not valid JSON");
  if (Status s = CheckInferenceBody(body); !s.ok()) return s;
  Result<std::optional<NextHint>> next = ParseNextHint(req.get_header_value(kNextHeader));
  if (!next.ok()) return next.status();
  std::optional<std::string> header_agent;
  if (req.has_header("X-Agent-Id")) header_agent = req.get_header_value("X-Agent-Id");
  Result<Tenant> tenant = ResolveTenant(path_agent, header_agent, &body);
  if (!tenant.ok()) return tenant.status();
  if (!tenant.value() && req.has_header(kParentHeader)) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         std::string(kParentHeader) + " needs an agent id for the new agent");
  }
  // Media in a slot cannot be saved, and what cannot be saved must not stay
  // for the agent's next turn either: the slot is erased after this one.
  if (!options_.persist || CarriesMedia(body)) tenant = Tenant{};

  // Turn-end saves wait until this request's first token (or a bound).
  Placer::PrefillTicket prefill = placer_.Prefilling();
  if (!hooks_.wait_upstream())
    return Status::Error(ErrorCode::kUnavailable, "llama-server is down");
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
      return Status::Error(ErrorCode::kRateLimited,
                           "this API key started " +
                               std::to_string(options_.max_new_agents_per_minute) +
                               " new agents in the last minute: retry in " +
                               std::to_string(retry_after) + " s, or reuse an agent id");
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
    if (!hooks_.wait_upstream())
      return Status::Error(ErrorCode::kUnavailable, "llama-server is down");
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

std::shared_ptr<InferenceExchange::Exchange> InferenceExchange::Start(
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

void InferenceExchange::Record(const Lease& lease, int status,
                               const std::optional<Timings>& timings,
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

Status InferenceExchange::Respond(std::shared_ptr<Exchange> ex, httplib::Response& res) {
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

InferenceExchange::InferenceExchange(const ProxyOptions& options, Upstream& upstream,
                                     Placer& placer, AdminApi& admin, Metrics& metrics, Hooks hooks)
    : options_(options),
      upstream_(upstream),
      placer_(placer),
      admin_(admin),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      new_agents_(options.max_new_agents_per_minute) {}

Status InferenceExchange::Pass(const httplib::Request& req, const std::string& body,
                               httplib::Response& res, const std::string& upstream_target) {
  return Respond(
      Start(ForwardOf(req, upstream_target, body), std::nullopt, std::chrono::steady_clock::now()),
      res);
}

}  // namespace agentkv

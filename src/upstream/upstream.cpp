#include "upstream/upstream.h"

#include <httplib.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace agentkv {

using nlohmann::json;

// abort_ runs under mu_, so Detach() cannot return (and the connection it
// closes cannot be destroyed) while it runs.
void CancelToken::Cancel() {
  MutexLock lock(mu_);
  cancelled_ = true;
  if (abort_) abort_();
}

bool CancelToken::cancelled() const {
  MutexLock lock(mu_);
  return cancelled_;
}

void CancelToken::Attach(std::function<void()> abort) {
  MutexLock lock(mu_);
  abort_ = std::move(abort);
  if (cancelled_) abort_();
}

void CancelToken::Detach() {
  MutexLock lock(mu_);
  abort_ = nullptr;
}

namespace {

httplib::Client MakeClient(const UpstreamOptions& o) {
  httplib::Client cli(o.base_url);
  cli.set_connection_timeout(o.connect_timeout);
  cli.set_read_timeout(o.read_timeout);
  cli.set_write_timeout(o.read_timeout);
  cli.set_keep_alive(false);
  cli.set_tcp_nodelay(true);  // a request's head and body are separate sends (see FrontServer)
  if (!o.api_key.empty()) cli.set_bearer_token_auth(o.api_key);
  return cli;
}

using SteadyClock = std::chrono::steady_clock;

// httplib reports a read timeout and a dropped connection alike: only the
// time spent tells them apart. The messages reach clients (502, 504): they
// name no internal address (agentkv's start log has it).
Status TransportError(const UpstreamOptions& o, httplib::Error err,
                      SteadyClock::time_point started) {
  if (err == httplib::Error::Read && SteadyClock::now() - started >= o.read_timeout) {
    return Status::Error(
        ErrorCode::kUpstreamTimeout,
        "llama-server did not answer within " + std::to_string(o.read_timeout.count()) + " s");
  }
  if (err == httplib::Error::Read || err == httplib::Error::Write) {
    return Status::Error(ErrorCode::kUpstreamDown,
                         "llama-server dropped the connection (" + httplib::to_string(err) + ")");
  }
  return Status::Error(ErrorCode::kUpstreamDown,
                       "llama-server is unreachable (" + httplib::to_string(err) + ")");
}

// llama-server answers {"error":{"message":...}} on failure.
std::string ErrorMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string()) {
    return j["error"]["message"].get<std::string>();
  }
  return body.substr(0, 200);
}

Result<SlotActionResult> ParseSlotAction(const Result<std::string>& body, const char* tokens_field,
                                         const char* bytes_field, const char* ms_field) {
  if (!body.ok()) return body.status();
  json j = json::parse(body.value(), nullptr, false);
  if (!j.is_object()) {
    return Status::Error(ErrorCode::kUpstreamError,
                         "llama-server sent a slot answer that is not JSON");
  }
  // An odd field reads as 0 instead of throwing.
  auto number = [](const json& obj, const char* key) {
    auto it = obj.find(key);
    return it != obj.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  SlotActionResult r;
  r.n_tokens = static_cast<long long>(number(j, tokens_field));
  r.n_bytes = static_cast<long long>(number(j, bytes_field));
  if (j.contains("timings") && j["timings"].is_object()) r.ms = number(j["timings"], ms_field);
  return r;
}

std::string SlotPath(SlotId slot, const char* action) {
  return "/slots/" + std::to_string(slot.value) + "?action=" + action;
}

}  // namespace

Upstream::Upstream(UpstreamOptions options) : options_(std::move(options)) {}

void Upstream::LimitSlotActionsTo(SteadyClock::time_point deadline) {
  action_deadline_ = deadline.time_since_epoch().count();
}

Result<std::string> Upstream::PostJson(const std::string& path, const std::string& body) {
  UpstreamOptions o = options_;
  const auto started = SteadyClock::now();
  if (const auto deadline = action_deadline_.load(); deadline != 0) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(
        SteadyClock::time_point(SteadyClock::duration(deadline)) - started);
    o.read_timeout = std::clamp(left, std::chrono::seconds(1), o.read_timeout);
    o.connect_timeout = std::min(o.connect_timeout, o.read_timeout);
  }
  httplib::Client cli = MakeClient(o);
  httplib::Result res = cli.Post(path, body, "application/json");
  if (!res) return TransportError(o, res.error(), started);
  if (res->status != 200) {
    return Status::Error(ErrorCode::kUpstreamError, "llama-server answered " +
                                                        std::to_string(res->status) + " to " +
                                                        path + ": " + ErrorMessage(res->body));
  }
  return res->body;
}

Result<SlotActionResult> Upstream::SaveSlot(SlotId slot, const std::string& filename) {
  return ParseSlotAction(PostJson(SlotPath(slot, "save"), json{{"filename", filename}}.dump()),
                         "n_saved", "n_written", "save_ms");
}

Result<SlotActionResult> Upstream::RestoreSlot(SlotId slot, const std::string& filename) {
  return ParseSlotAction(PostJson(SlotPath(slot, "restore"), json{{"filename", filename}}.dump()),
                         "n_restored", "n_read", "restore_ms");
}

Status Upstream::EraseSlot(SlotId slot) {
  Result<std::string> r = PostJson(SlotPath(slot, "erase"), "{}");
  return r.ok() ? Status::Ok() : r.status();
}

Status Upstream::Health() {
  httplib::Client cli = MakeClient(options_);
  cli.set_read_timeout(std::chrono::seconds(5));  // a health check must not hang
  const auto started = SteadyClock::now();
  httplib::Result res = cli.Get("/health");
  if (!res) return TransportError(options_, res.error(), started);
  if (res->status != 200) {
    return Status::Error(ErrorCode::kUpstreamError,
                         "llama-server is not ready (health " + std::to_string(res->status) + ")");
  }
  return Status::Ok();
}

Result<Upstream::Props> Upstream::GetProps() {
  httplib::Client cli = MakeClient(options_);
  const auto started = SteadyClock::now();
  httplib::Result res = cli.Get("/props");
  if (!res) return TransportError(options_, res.error(), started);
  json j = json::parse(res->body, nullptr, false);
  if (res->status != 200 || !j.is_object() || !j.contains("total_slots") ||
      !j["total_slots"].is_number_integer()) {
    return Status::Error(ErrorCode::kUpstreamError, "llama-server's /props has no total_slots");
  }
  Props p;
  p.total_slots = j["total_slots"].get<int>();
  p.model_path = j.value("model_path", "");
  p.build = j.value("build_info", "");
  if (j.contains("default_generation_settings") && j["default_generation_settings"].is_object()) {
    p.n_ctx_slot = j["default_generation_settings"].value("n_ctx", 0LL);
  }
  return p;
}

Status Upstream::Forward(const ForwardRequest& request, const ResponseSink& sink,
                         CancelToken* cancel) {
  httplib::Client cli = MakeClient(options_);
  httplib::Request req;
  req.method = request.method;
  req.path = request.path;
  for (const auto& [name, value] : request.headers) req.headers.emplace(name, value);
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    req.body = request.body;
    if (!request.content_type.empty()) {
      req.headers.emplace("Content-Type", request.content_type);
    }
  }
  bool stopped_by_sink = false;
  auto cancelled = [cancel] { return cancel && cancel->cancelled(); };
  req.response_handler = [&](const httplib::Response& res) {
    HeaderList headers(res.headers.begin(), res.headers.end());
    if (!cancelled() && sink.on_headers(res.status, headers)) return true;
    stopped_by_sink = true;
    return false;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (!cancelled() && sink.on_body(data, size)) return true;
    stopped_by_sink = true;
    return false;
  };
  if (cancel) cancel->Attach([&cli] { cli.stop(); });
  const auto started = SteadyClock::now();
  httplib::Result res =
      cancelled() ? httplib::Result{nullptr, httplib::Error::Canceled} : cli.send(req);
  if (cancel) cancel->Detach();
  if (stopped_by_sink || cancelled()) {
    return Status::Error(ErrorCode::kInternal, "cancelled");
  }
  if (!res) return TransportError(options_, res.error(), started);
  return Status::Ok();
}

}  // namespace agentkv

#include "app/status_command.h"

#include <httplib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "app/status_view.h"

namespace agentkv {

using nlohmann::json;

namespace {

struct Target {
  std::string scheme_host_port;  // http://host:port
  std::string base;              // path prefix, no trailing slash
};

Result<Target> ParseUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0 || url.size() == scheme.size()) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "--url must be http://host[:port][/path] (agentkv serves plain HTTP), "
                         "not '" +
                             url + "'");
  }
  const std::size_t slash = url.find('/', scheme.size());
  Target t{url.substr(0, slash), slash == std::string::npos ? "" : url.substr(slash)};
  while (!t.base.empty() && t.base.back() == '/') t.base.pop_back();
  return t;
}

std::string ServerMessage(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string()) {
    return j["error"]["message"].get<std::string>();
  }
  return body.substr(0, 200);
}

void Wait(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

}  // namespace

Result<json> FetchStatus(const StatusOptions& o) {
  Result<Target> target = ParseUrl(o.url);
  if (!target.ok()) return target.status();
  httplib::Client client(target->scheme_host_port);
  client.set_connection_timeout(std::chrono::seconds(10));
  client.set_read_timeout(std::chrono::seconds(10));
  if (!o.admin_key.empty()) client.set_bearer_token_auth(o.admin_key);
  const std::string path =
      target->base + "/admin/status?limit=" + std::to_string(std::max<std::size_t>(o.agents, 1)) +
      "&recent=" + std::to_string(o.recent);
  httplib::Result res = client.Get(path);
  if (!res) {
    return Status::Error(ErrorCode::kUpstreamDown, "cannot reach agentkv at " + o.url + ": " +
                                                       httplib::to_string(res.error()));
  }
  if (res->status == 401) {
    return Status::Error(ErrorCode::kUnauthorized,
                         ServerMessage(res->body) +
                             (o.admin_key.empty() ? ": give it with " : ": check ") +
                             "--admin-key-file or AGENTKV_ADMIN_KEY");
  }
  if (res->status == 403) return Status::Error(ErrorCode::kForbidden, ServerMessage(res->body));
  json status = json::parse(res->body, nullptr, false);
  if (res->status != 200 || !status.is_object() || !status.contains("totals")) {
    return Status::Error(ErrorCode::kUpstreamError,
                         "GET " + path + " answered " + std::to_string(res->status) + ": " +
                             ServerMessage(res->body) + " (is " + o.url + " an agentkv?)");
  }
  if (o.agents == 0) status["agents"]["items"] = json::array();
  return status;
}

int RunStatus(const StatusOptions& o, std::ostream& out, std::ostream& err,
              const std::function<void(std::chrono::milliseconds)>& wait) {
  const bool watching = o.watch.count() > 0;
  // Redrawn in place on a terminal; one frame after another otherwise.
  const bool terminal = watching && !o.json && &out == &std::cout && ::isatty(STDOUT_FILENO);
  int code = 0;
  for (int frame = 1;; ++frame) {
    Result<json> status = FetchStatus(o);
    code = status.ok() ? 0 : 1;
    if (!status.ok()) {
      err << "agentkv status: " << status.status().message() << "\n";
      const ErrorCode c = status.status().code();
      if (c == ErrorCode::kUnauthorized || c == ErrorCode::kForbidden ||
          c == ErrorCode::kInvalidArgument) {
        return code;
      }
    } else if (o.json) {
      out << (watching ? status->dump() : status->dump(2)) << "\n";
    } else {
      if (terminal) out << "\x1b[H\x1b[2J";
      out << RenderStatusText(status.value(), o.url);
      if (watching && !terminal) out << "\n";
    }
    out.flush();
    if (!watching || (o.count > 0 && frame >= o.count)) return code;
    (wait ? wait : Wait)(o.watch);
  }
}

}  // namespace agentkv

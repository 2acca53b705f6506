#include "http/browser_policy.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace agentkv {

namespace {

// Names that only ever reach this machine: a rebound DNS name never is one.
constexpr std::string_view kLoopbackNames[] = {"localhost", "127.0.0.1", "[::1]"};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// The name part of a Host header, normalized; "" if malformed.
std::string HostName(std::string_view host) {
  std::string_view name = host, port;
  if (!host.empty() && host[0] == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return "";
    name = host.substr(0, close + 1);
    port = host.substr(close + 1);
  } else if (const std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon);
  }
  if (!port.empty() && (port[0] != ':' || port.size() == 1 || !AllDigits(port.substr(1)))) {
    return "";
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return Lower(name);
}

}  // namespace

Result<std::string> NormalizeHostName(const std::string& entry) {
  if (entry == "*") return entry;
  std::string_view name = entry;
  const auto colons = std::count(entry.begin(), entry.end(), ':');
  std::string bracketed;
  if (colons >= 2 && entry[0] != '[') {  // a bare IPv6 address
    bracketed = "[" + entry + "]";
    name = bracketed;
  } else if (colons == 1 || (colons >= 2 && entry.back() != ']')) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "allowed host '" + entry + "': give the name without a port");
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) {
    return Status::Error(ErrorCode::kInvalidArgument, "an allowed host name is empty");
  }
  return Lower(name);
}

std::vector<std::string> ListenHostNames(const std::string& listen_host) {
  for (const char* wildcard : {"", "0.0.0.0", "::", "[::]"}) {
    if (listen_host == wildcard) return {};
  }
  Result<std::string> name = NormalizeHostName(listen_host);
  if (!name.ok()) return {};
  return {name.value()};
}

Status CheckHost(const BrowserPolicy& policy, const std::string& host) {
  if (Contains(policy.allowed_hosts, "*")) return Status::Ok();
  const std::string name = HostName(host);
  const bool loopback = std::find(std::begin(kLoopbackNames), std::end(kLoopbackNames), name) !=
                        std::end(kLoopbackNames);
  if (!name.empty() && (loopback || Contains(policy.allowed_hosts, name))) return Status::Ok();
  return Status::Error(ErrorCode::kForbidden, host.empty()
                                                  ? "a request without a Host header is refused"
                                                  : "Host '" + host +
                                                        "' is not a name agentkv serves; add it to "
                                                        "--allowed-hosts");
}

bool AllowsOrigin(const BrowserPolicy& policy, const std::string& origin) {
  if (origin.empty()) return false;
  if (Contains(policy.cors_origins, "*")) return true;
  const std::string given = Lower(origin);
  return std::any_of(policy.cors_origins.begin(), policy.cors_origins.end(),
                     [&](const std::string& allowed) {
                       std::string_view a = allowed;
                       if (!a.empty() && a.back() == '/') a.remove_suffix(1);
                       return Lower(a) == given;
                     });
}

Status CheckOrigin(const BrowserPolicy& policy, const std::string& origin) {
  if (origin.empty() || AllowsOrigin(policy, origin)) return Status::Ok();
  return Status::Error(ErrorCode::kForbidden, "requests from pages of origin '" + origin +
                                                  "' are refused; add it to --cors-origins");
}

bool IsOwnOrigin(const BrowserPolicy& policy, const std::string& origin, const std::string& host) {
  const std::string name = HostName(host);
  const bool loopback = std::find(std::begin(kLoopbackNames), std::end(kLoopbackNames), name) !=
                        std::end(kLoopbackNames);
  if (name.empty() || (!loopback && !Contains(policy.allowed_hosts, name))) return false;
  return Lower(origin) == "http://" + Lower(host);
}

Status RequireJson(const std::string& content_type) {
  std::string_view type = std::string_view(content_type).substr(0, content_type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  if (Lower(type) == "application/json") return Status::Ok();
  return Status::Error(
      ErrorCode::kUnsupportedMedia,
      "the admin API takes Content-Type: application/json" +
          (content_type.empty() ? std::string() : " (got '" + content_type + "')"));
}

std::vector<std::pair<std::string, std::string>> CorsHeaders(const std::string& origin,
                                                             bool preflight,
                                                             const std::string& requested_headers) {
  std::vector<std::pair<std::string, std::string>> h = {
      {"Access-Control-Allow-Origin", origin},
      {"Vary", "Origin"},
  };
  if (preflight) {
    h.emplace_back("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    if (!requested_headers.empty()) {
      h.emplace_back("Access-Control-Allow-Headers", requested_headers);
    }
    h.emplace_back("Access-Control-Max-Age", "600");
  } else {
    h.emplace_back("Access-Control-Expose-Headers",
                   "X-Agentkv-Slot, X-Agentkv-Placement, Retry-After");
  }
  return h;
}

}  // namespace agentkv

#pragma once
// What agentkv lets a web browser do. A page on another site must not talk
// to agents or the admin API through the user's browser: requests whose
// Host is not a name agentkv is known by are refused (DNS rebinding), as
// are requests from an Origin not on --cors-origins (browsers send Origin
// on every cross-site call, clients of the API send none), and admin POSTs
// must be application/json, which a page can only send after a preflight.
// Pure functions, thread-safe.

#include <string>
#include <utility>
#include <vector>

#include "agentkv/status.h"

namespace agentkv {

struct BrowserPolicy {
  // Host header names accepted besides the loopback names (localhost,
  // 127.0.0.1, [::1]), which always are; any port. Lowercase, IPv6 in
  // brackets (see NormalizeHostName). "*": any Host.
  std::vector<std::string> allowed_hosts;
  // Origins ("https://app.example:3000") whose pages may call agentkv, with
  // CORS headers on the answers; "*": any. Empty: none.
  std::vector<std::string> cors_origins;
};

// A --allowed-hosts entry as CheckHost compares it: lowercase, a bare IPv6
// address put in brackets, one trailing dot dropped. kInvalidArgument for
// an empty entry or one with a port.
Result<std::string> NormalizeHostName(const std::string& entry);

// The names agentkv listening on `listen_host` is reached by, besides the
// loopback names: the address itself unless it is a wildcard (0.0.0.0, ::).
std::vector<std::string> ListenHostNames(const std::string& listen_host);

// OK when `host` (the Host header, name[:port]) names an allowed host;
// kForbidden otherwise, also when it is empty or malformed.
Status CheckHost(const BrowserPolicy& policy, const std::string& host);

// True when `origin` (the Origin header) is on cors_origins, or any is.
bool AllowsOrigin(const BrowserPolicy& policy, const std::string& origin);

// OK for no Origin (not a browser) or an allowed one; kForbidden otherwise.
Status CheckOrigin(const BrowserPolicy& policy, const std::string& origin);

// True when `origin` (the Origin header) is agentkv's own: a page it served
// (the status page, /ui) at the address `host` (the Host header) names.
// That name must be one agentkv is known by, a loopback name or one listed
// in allowed_hosts: "*" does not count, since a rebound DNS name would then
// give any site's page agentkv's origin.
bool IsOwnOrigin(const BrowserPolicy& policy, const std::string& origin, const std::string& host);

// OK when `content_type` is application/json (parameters allowed);
// kUnsupportedMedia otherwise, an absent one included.
Status RequireJson(const std::string& content_type);

// Headers that let a page of the allowed `origin` read an answer; with
// `preflight`, also what it may send (`requested_headers` is the
// preflight's Access-Control-Request-Headers, echoed).
std::vector<std::pair<std::string, std::string>> CorsHeaders(const std::string& origin,
                                                             bool preflight,
                                                             const std::string& requested_headers);

}  // namespace agentkv

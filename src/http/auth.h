#pragma once
// Who may use which route, given the configured keys. Pure functions,
// thread-safe; keys are compared in constant time and never put in a message.

#include <string>
#include <vector>

#include "agentkv/status.h"
#include "http/routes.h"

namespace agentkv {

struct AuthPolicy {
  std::vector<std::string> api_keys;  // empty: no authentication
  // The tenant of each key, by index ("" or missing: the key is a tenant of
  // its own). Keys of one tenant share agents (Prefixes::ScopeOfTenant).
  std::vector<std::string> tenants;
  std::string admin_key;  // empty: /admin/ open only without api_keys, global routes refused
  bool metrics_need_key = false;
  bool health_needs_key = false;
};

// `authorization` is the request's Authorization header ("Bearer <key>").
// Returns OK, kUnauthorized (no or wrong key) or kForbidden (admin API off).
// Global llama-server routes (RouteKind::kGlobal) take only the admin key
// and are forbidden when none is set, even with no keys at all: they act
// for every agent. Preflights are always allowed (browsers send no key).
// The status page (kStatusPage) holds no data and a browser cannot send a
// key when it opens a page: it is served without one wherever the admin
// API is on, and its requests to the admin API carry the admin key.
Status Authorize(const AuthPolicy& policy, RouteKind kind, const std::string& authorization);

// The API key an authorized request used: "" when agentkv has no keys.
std::string ApiKeyOf(const AuthPolicy& policy, const std::string& authorization);

// The scope of an authorized request: its key's tenant's, else its key's
// own (Prefixes::ScopeOf; "open" when agentkv has no keys).
std::string ScopeOfRequest(const AuthPolicy& policy, const std::string& authorization);

}  // namespace agentkv

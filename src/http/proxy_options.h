#pragma once
// What the http front and its inference exchange are allowed to take and
// do: bodies, connections, keys, browsers, agent namespaces.

#include <cstddef>
#include <string>

#include "http/auth.h"
#include "http/browser_policy.h"
#include "http/connection_limits.h"

namespace agentkv {

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

}  // namespace agentkv

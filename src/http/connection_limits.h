#pragma once
// The bounds on client connections (see front_server.h), as plain values:
// the command line sets them, the http front enforces them.

#include <chrono>
#include <cstddef>

namespace agentkv {

struct StreamLimits {
  std::size_t max_head_bytes = 64u << 10;         // request line and header fields
  std::size_t max_raw_body_bytes = 0;             // a body as sent, chunk framing included
  std::chrono::milliseconds write_timeout{5000};  // per write: a client that reads nothing
};

struct ConnectionLimits {
  int max_connections = 512;             // served at once, from every client
  int max_connections_per_client = 256;  // from one client address
  // Connections past a cap that may still ask for a control route.
  int overflow_reserve = 32;
  std::chrono::milliseconds overflow_timeout{2000};  // for that one request's head
  std::chrono::milliseconds request_timeout{30000};  // head and body of a request
  std::chrono::milliseconds keep_alive_timeout{5000};
  int keep_alive_max_requests = 100;
  StreamLimits stream;
};

struct ConnectionCounts {
  int open = 0;           // admitted within the caps
  int overflow = 0;       // past a cap, being answered
  long long refused = 0;  // past a cap since the start (a control route at most)
};

}  // namespace agentkv

#pragma once
// `agentkv status`: what the status page shows, in a terminal, read from a
// running agentkv's GET /admin/status. Once, or every `watch` until
// interrupted (or `count` refreshes); as tables, or as JSON for scripts.

#include <chrono>
#include <cstddef>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <ostream>
#include <string>

#include "agentkv/status.h"

namespace agentkv {

struct StatusOptions {
  std::string url = "http://127.0.0.1:8090";  // http only, optionally with a base path
  std::string admin_key;                      // empty: none sent
  bool json = false;                          // the answer as JSON (one line each with watch)
  std::chrono::milliseconds watch{0};         // 0: once
  int count = 0;                              // with watch: stop after this many; 0: never
  std::size_t agents = 20;                    // agents listed, most recently used first
  std::size_t recent = 10;                    // recent requests listed
};

// GET /admin/status from the agentkv at o.url, with the admin key if any.
// Returns kInvalidArgument for a URL that is not http://host[:port][/path],
// kUpstreamDown if agentkv cannot be reached, kUnauthorized/kForbidden with
// a message naming the admin key, kUpstreamError for any other answer that
// is not the status. Blocks on the network (10 s at most each way).
Result<nlohmann::json> FetchStatus(const StatusOptions& o);

// Prints the status to `out`, once or as o.watch says; errors go to `err`.
// Returns the exit code: 0, or 1 if the (last) status could not be read. A
// watch goes on past a failed read (agentkv restarting) but not past a
// refused key. `wait` sleeps between refreshes (tests pass their own).
int RunStatus(const StatusOptions& o, std::ostream& out, std::ostream& err,
              const std::function<void(std::chrono::milliseconds)>& wait = nullptr);

}  // namespace agentkv

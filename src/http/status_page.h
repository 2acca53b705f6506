#pragma once
// GET /ui: the status page (ui/index.html) and its scripts and style sheet,
// served from the binary. The page holds no data: it fetches
// /admin/status, and acts through the admin API, with the admin key the
// user types into it when agentkv has keys. A strict Content-Security-Policy
// lets it run only its own script, load only its own style sheet, and talk
// only to agentkv. Pure functions, thread-safe.

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace agentkv {

struct StaticAnswer {
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The file served at `path` (/ui, /ui/, /ui/app.js, /ui/chart.js,
// /ui/app.css), or nullopt
// (404). `needs_key`: agentkv has keys, so the page asks for the admin key
// before it fetches anything.
std::optional<StaticAnswer> StatusPageFile(const std::string& path, bool needs_key);

}  // namespace agentkv

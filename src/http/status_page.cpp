#include "http/status_page.h"

#include "http/ui_assets.h"

namespace agentkv {

namespace {

// Only agentkv's own files, and fetches to agentkv itself; no inline script
// or style, no frames, no forms, no plugins. The icon is an empty data: URL,
// so that the browser asks agentkv for no /favicon.ico.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::vector<std::pair<std::string, std::string>> Headers() {
  return {{"Content-Security-Policy", kContentSecurityPolicy},
          {"X-Content-Type-Options", "nosniff"},
          {"X-Frame-Options", "DENY"},
          {"Referrer-Policy", "no-referrer"},
          {"Cross-Origin-Opener-Policy", "same-origin"},
          {"Cross-Origin-Resource-Policy", "same-origin"},
          {"Cache-Control", "no-store"}};
}

}  // namespace

std::optional<StaticAnswer> StatusPageFile(const std::string& path, bool needs_key) {
  if (path == "/ui" || path == "/ui/") {
    std::string html(ui_assets::kIndexHtml);
    const std::string open = "data-auth=\"open\"";
    if (needs_key) {
      if (const std::size_t at = html.find(open); at != std::string::npos) {
        html.replace(at, open.size(), "data-auth=\"key\"");
      }
    }
    return StaticAnswer{std::move(html), "text/html; charset=utf-8", Headers()};
  }
  static const struct {
    const char* path;
    std::string_view body;
    const char* type;
  } kFiles[] = {{"/ui/app.js", ui_assets::kAppJs, "text/javascript; charset=utf-8"},
                {"/ui/chart.js", ui_assets::kChartJs, "text/javascript; charset=utf-8"},
                {"/ui/app.css", ui_assets::kAppCss, "text/css; charset=utf-8"}};
  for (const auto& f : kFiles) {
    if (path == f.path) return StaticAnswer{std::string(f.body), f.type, Headers()};
  }
  return std::nullopt;
}

}  // namespace agentkv

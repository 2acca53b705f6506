#pragma once
// The status page's files, compiled in from src/http/ui/ by CMake
// (ui_assets.cpp.in): agentkv serves the page with nothing to install,
// read from disk or fetch from another site. Edit the files under ui/.

#include <string_view>

namespace agentkv::ui_assets {

extern const std::string_view kIndexHtml;  // ui/index.html
extern const std::string_view kAppJs;      // ui/app.js
extern const std::string_view kChartJs;    // ui/chart.js
extern const std::string_view kAppCss;     // ui/app.css

}  // namespace agentkv::ui_assets

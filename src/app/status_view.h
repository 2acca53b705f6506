#pragma once
// `agentkv status` as text: a summary of the totals, then the slots, the
// agents and the recent requests in aligned columns. Pure and thread-safe;
// takes the JSON of GET /admin/status (see http/status_report.h) and prints
// "-" for anything it lacks, so an older or newer agentkv still shows.

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace agentkv {

// `url` names the daemon in the first line. Times are shown in local time.
std::string RenderStatusText(const nlohmann::json& status, const std::string& url);

}  // namespace agentkv

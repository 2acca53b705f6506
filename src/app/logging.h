#pragma once
// Logging setup: spdlog to stderr, one line per event. `format` "json" writes
// one JSON object a line ({"time","level","msg"}), for journald and log
// shippers; "text" a plain line.

#include <string>

namespace agentkv {

void ConfigureLogging(const std::string& level, const std::string& format);

// `text` escaped for a JSON string (without the quotes).
std::string JsonEscape(const std::string& text);

}  // namespace agentkv

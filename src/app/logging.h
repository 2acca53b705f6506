#pragma once
// Logging setup: spdlog to stderr, one line per event. `format` "json" writes
// one JSON object a line ({"time","level","msg"}), for journald and log
// shippers; "text" a plain line.

#include <string>

namespace agentkv {

// `journal`: stderr goes to journald (systemd::StderrIsJournal): each line
// starts with its priority, "<N>", which journald takes off and keeps.
void ConfigureLogging(const std::string& level, const std::string& format, bool journal = false);

// `text` escaped for a JSON string (without the quotes), by nlohmann/json;
// bytes that are not UTF-8 become U+FFFD.
std::string JsonEscape(const std::string& text);

}  // namespace agentkv

#include "app/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace agentkv {

std::string JsonEscape(const std::string& text) {
  // nlohmann/json's dump, with bytes that are not UTF-8 replaced (U+FFFD)
  // rather than thrown on: a line of llama-server's output cut inside a
  // character still makes a valid JSON line.
  const std::string quoted =
      nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

namespace {

// %j: the message, escaped for a JSON string.
class JsonMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string escaped = JsonEscape(std::string(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessage>();
  }
};

// %P: the line's syslog priority as journald reads it from a stream
// ("<3>" error, "<4>" warning, "<6>" info, "<7>" debug), so that
// `journalctl -p warning` finds agentkv's warnings.
class JournalPriority : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const char* p = "<6>";
    switch (msg.level) {
      case spdlog::level::critical:
        p = "<2>";
        break;
      case spdlog::level::err:
        p = "<3>";
        break;
      case spdlog::level::warn:
        p = "<4>";
        break;
      case spdlog::level::trace:
      case spdlog::level::debug:
        p = "<7>";
        break;
      default:
        break;
    }
    dest.append(p, p + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriority>();
  }
};

}  // namespace

void ConfigureLogging(const std::string& level, const std::string& format, bool journal) {
  spdlog::set_level(spdlog::level::from_str(level));
  const std::string prefix = journal ? "%P" : "";
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<JsonMessage>('j').add_flag<JournalPriority>('P');
  formatter->set_pattern(
      prefix + (format == "json" ? R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%j"})"
                                 : "[%Y-%m-%d %H:%M:%S.%e] [%l] %v"));
  spdlog::set_formatter(std::move(formatter));
}

}  // namespace agentkv

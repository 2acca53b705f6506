#include "app/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace agentkv {
namespace {

TEST(Logging, JsonEscapingRoundTripsEveryAwkwardCharacter) {
  const std::string text = "quote \" backslash \\ newline \n tab \t bell \a ümlaut";
  const nlohmann::json parsed = nlohmann::json::parse("\"" + JsonEscape(text) + "\"");
  EXPECT_EQ(parsed.get<std::string>(), text);
}

TEST(Logging, BytesThatAreNotUtf8AreReplacedSoTheLineStaysJson) {
  // A line cut inside "ü" (0xc3 0xbc), and a stray 0xff.
  const std::string text = std::string("cut \xc3") + " stray \xff end";
  const nlohmann::json parsed = nlohmann::json::parse("\"" + JsonEscape(text) + "\"");
  EXPECT_EQ(parsed.get<std::string>(), "cut \xef\xbf\xbd stray \xef\xbf\xbd end");
}

TEST(Logging, TheJsonFormatWritesOneParsableObjectALine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::default_logger()->sinks().push_back(sink);
  ConfigureLogging("info", "json");
  spdlog::info("agent \"{}\" said {}", "a", "x\ny");
  spdlog::debug("not shown at info");
  ConfigureLogging("info", "text");
  spdlog::default_logger()->sinks().pop_back();

  std::istringstream lines(out.str());
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "agent \"a\" said x\ny");
  EXPECT_FALSE(j["time"].get<std::string>().empty());
  EXPECT_FALSE(std::getline(lines, line)) << "one line only: " << line;
}

TEST(Logging, UnderJournaldEachLineStartsWithItsPriority) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::default_logger()->sinks().push_back(sink);
  for (const char* format : {"text", "json"}) {
    ConfigureLogging("debug", format, true);
    spdlog::error("e");
    spdlog::warn("w");
    spdlog::info("i");
    spdlog::debug("d");
  }
  ConfigureLogging("info", "text");
  spdlog::default_logger()->sinks().pop_back();
  std::istringstream lines(out.str());
  std::string line;
  for (const char* format : {"text", "json"}) {
    for (const char* priority : {"<3>", "<4>", "<6>", "<7>"}) {
      ASSERT_TRUE(std::getline(lines, line)) << format;
      EXPECT_EQ(line.rfind(priority, 0), 0u) << format << ": " << line;
      if (std::string(format) == "json") {
        EXPECT_FALSE(nlohmann::json::parse(line.substr(3), nullptr, false).is_discarded()) << line;
      }
    }
  }
}

}  // namespace
}  // namespace agentkv

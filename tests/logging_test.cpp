#include "logging.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace agentkv {
namespace {

TEST(Logging, JsonEscapingRoundTripsEveryAwkwardCharacter) {
  const std::string text = "quote \" backslash \\ newline \n tab \t bell \a ümlaut";
  const nlohmann::json parsed = nlohmann::json::parse("\"" + JsonEscape(text) + "\"");
  EXPECT_EQ(parsed.get<std::string>(), text);
}

}  // namespace
}  // namespace agentkv

#include "http/request_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace agentkv {
namespace {

TEST(JsonNesting, IsRefusedPastTheLimitWithAMessageThatSaysSo) {
  const std::string deep = std::string(129, '[') + std::string(129, ']');
  Status s = CheckJsonNesting(deep, 128);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("nesting deeper than 128"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckJsonNesting(std::string(128, '[') + std::string(128, ']'), 128).ok());
  EXPECT_FALSE(CheckJsonNesting(R"({"a":{"b":[{"c":[]}]}})", 4).ok());
  EXPECT_TRUE(CheckJsonNesting(R"({"a":{"b":[{"c":[]}]}})", 5).ok());
}

TEST(JsonNesting, IgnoresBracketsInsideStringsAndEscapedQuotes) {
  EXPECT_TRUE(CheckJsonNesting(R"({"text":"[[[[[[{{{{"})", 1).ok());
  EXPECT_TRUE(CheckJsonNesting(R"({"text":"a \" [[[[ \\"})", 1).ok());
  EXPECT_FALSE(CheckJsonNesting(R"({"text":"a \\", "x":[[]]})", 2).ok())
      << "the string ended at the escaped backslash";
}

}  // namespace
}  // namespace agentkv

#include "http/log_text.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

TEST(LogText, WritesControlCharactersAsEscapesSoNoLineCanBeForged) {
  EXPECT_EQ(EscapeForLog("/v1/models?q=1"), "/v1/models?q=1");
  EXPECT_EQ(EscapeForLog("/x?a=\r\n2026 [info] forged\x1b[2J"),
            "/x?a=\\x0d\\x0a2026 [info] forged\\x1b[2J");
  EXPECT_EQ(EscapeForLog("a\\x0d"), "a\\\\x0d") << "an escape cannot be forged either";
  EXPECT_EQ(EscapeForLog("caf\xc3\xa9\x7f"), "caf\xc3\xa9\\x7f");
}

}  // namespace
}  // namespace agentkv

#include "http/next_hint.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

TEST(NextHintHeader, ReadsToolDoneAndSeconds) {
  EXPECT_FALSE(ParseNextHint("").value()) << "no header";
  EXPECT_FALSE(ParseNextHint("   ").value());
  EXPECT_EQ(ParseNextHint("tool").value()->kind, NextHint::Kind::kTool);
  EXPECT_EQ(ParseNextHint(" done ").value()->kind, NextHint::Kind::kDone);
  std::optional<NextHint> h = ParseNextHint("2.5").value();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->kind, NextHint::Kind::kSeconds);
  EXPECT_DOUBLE_EQ(h->seconds, 2.5);
  EXPECT_DOUBLE_EQ(ParseNextHint("0").value()->seconds, 0);
  EXPECT_DOUBLE_EQ(ParseNextHint("604800").value()->seconds, 604800);
}

TEST(NextHintHeader, RefusesAnythingElseAndSaysWhatItTakes) {
  for (const char* bad : {"Tool", "soon", "-1", "1e3", "2.", ".5", "1.2.3", "604801", "nan", "inf",
                          "5s", "99999999999999999"}) {
    Result<std::optional<NextHint>> r = ParseNextHint(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("tool, done, or the seconds"), std::string::npos);
  }
}

}  // namespace
}  // namespace agentkv

#include "core/rate_limit.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

using std::chrono::seconds;

TEST(RateLimit, ABurstUpToTheRateThenOneAsEachRefills) {
  RateLimit limit(60);  // one a second
  const RateLimit::Clock::time_point t0{};
  int retry = 0;
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limit.Take("k", t0, &retry)) << i;
  EXPECT_FALSE(limit.Take("k", t0, &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_TRUE(limit.Take("other", t0, &retry)) << "each key has its own bucket";
  EXPECT_TRUE(limit.Take("k", t0 + seconds(1), &retry));
  EXPECT_FALSE(limit.Take("k", t0 + seconds(1), &retry));
  for (int i = 0; i < 60; ++i) EXPECT_TRUE(limit.Take("k", t0 + seconds(3600), &retry)) << i;
  EXPECT_FALSE(limit.Take("k", t0 + seconds(3600), &retry)) << "never more than a minute's worth";
}

TEST(RateLimit, ZeroMeansNoLimit) {
  RateLimit limit(0);
  int retry = 0;
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limit.Take("k", {}, &retry));
}

}  // namespace
}  // namespace agentkv

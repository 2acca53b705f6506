#include "core/metrics.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h;
  h.Observe(0.003);
  h.Observe(0.2);
  h.Observe(100);
  std::string out;
  h.Render(out, "x_seconds", "");
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.0025\"} 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.25\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_count 3\n"), std::string::npos);
}

TEST(Metrics, RequestsAreCountedByRouteAndStatusWithoutAgentLabels) {
  Metrics m;
  m.CountRequest("/v1/chat/completions", 200);
  m.CountRequest("/v1/chat/completions", 200);
  m.CountRequest("passthrough", 404);
  m.ObserveTtft("restored", std::chrono::milliseconds(40));
  const std::string out = m.Render(GaugeSnapshot{});
  EXPECT_NE(out.find("agentkv_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("agentkv_requests_total{route=\"passthrough\",status=\"404\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("agentkv_ttft_seconds_bucket{placement=\"restored\",le=\"0.05\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(out.find("agent="), std::string::npos);
}

TEST(Metrics, ReturnGapsAreBucketedFromASecondToADayByHowTheTurnEnded) {
  Metrics m;
  m.ObserveReturnGap("tool_calls", std::chrono::milliseconds(1500));
  m.ObserveReturnGap("tool_calls", std::chrono::seconds(4));
  m.ObserveReturnGap("stop", std::chrono::hours(2));
  const std::string out = m.Render(GaugeSnapshot{});
  EXPECT_NE(out.find("# TYPE agentkv_return_gap_seconds histogram\n"), std::string::npos) << out;
  EXPECT_NE(out.find("agentkv_return_gap_seconds_bucket{after=\"tool_calls\",le=\"1\"} 0\n"),
            std::string::npos);
  EXPECT_NE(out.find("agentkv_return_gap_seconds_bucket{after=\"tool_calls\",le=\"2.5\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("agentkv_return_gap_seconds_bucket{after=\"tool_calls\",le=\"5\"} 2\n"),
            std::string::npos);
  EXPECT_NE(out.find("agentkv_return_gap_seconds_bucket{after=\"stop\",le=\"3600\"} 0\n"),
            std::string::npos);
  EXPECT_NE(out.find("agentkv_return_gap_seconds_bucket{after=\"stop\",le=\"14400\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("agentkv_return_gap_seconds_count{after=\"stop\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace agentkv

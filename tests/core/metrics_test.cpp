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

}  // namespace
}  // namespace agentkv

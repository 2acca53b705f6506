#include "agentkv/llama_fields.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace agentkv {
namespace {

using nlohmann::json;

TEST(LlamaFields, PinningSetsTheSlotAndTurnsPromptCachingOn) {
  json body = {{"messages", json::array()}, {"id_slot", 7}, {"cache_prompt", false}};
  ASSERT_TRUE(CheckInferenceBody(body).ok());
  PinToSlot(body, SlotId{1});
  EXPECT_EQ(body["id_slot"], 1);
  EXPECT_EQ(body["cache_prompt"], true);
}

TEST(LlamaFields, RequestsThatWouldSpillOntoOtherSlotsAreRejected) {
  EXPECT_FALSE(CheckInferenceBody(json{{"n", 2}}).ok());
  EXPECT_FALSE(CheckInferenceBody(json{{"n_cmpl", 3}}).ok());
  EXPECT_FALSE(CheckInferenceBody(json::array()).ok());
  EXPECT_TRUE(CheckInferenceBody(json{{"n", 1}}).ok());
}

TEST(LlamaFields, FindsTimingsInAPlainJsonBody) {
  TimingsScanner s;
  const std::string body = R"({"choices":[],"timings":{"cache_n":40,"prompt_n":3}})";
  s.Feed(body.data(), 10);
  s.Feed(body.data() + 10, body.size() - 10);
  std::optional<Timings> t = s.Finish();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->cache_n, 40);
  EXPECT_EQ(t->prompt_n, 3);
}

TEST(LlamaFields, FindsTimingsInTheLastEventOfAStreamSplitAnywhere) {
  const std::string stream =
      "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
      "data: {\"choices\":[],\"timings\":{\"cache_n\":12,\"prompt_n\":5,\"predicted_n\":2}}\n\n"
      "data: [DONE]\n\n";
  for (size_t cut = 0; cut < stream.size(); cut += 7) {
    TimingsScanner s;
    s.Feed(stream.data(), cut);
    s.Feed(stream.data() + cut, stream.size() - cut);
    std::optional<Timings> t = s.Finish();
    ASSERT_TRUE(t) << cut;
    EXPECT_EQ(t->cache_n, 12);
    EXPECT_EQ(t->predicted_n, 2);
  }
}

TEST(LlamaFields, OddTimingFieldsReadAsZeroInsteadOfThrowing) {
  TimingsScanner s;
  const std::string body = R"({"timings":{"cache_n":null,"prompt_n":"x"}})";
  s.Feed(body.data(), body.size());
  std::optional<Timings> t = s.Finish();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->cache_n, 0);
  EXPECT_EQ(t->prompt_n, 0);
}

TEST(LlamaFields, NoTimingsInAnErrorBody) {
  TimingsScanner s;
  const std::string body = R"({"error":{"code":400}})";
  s.Feed(body.data(), body.size());
  EXPECT_FALSE(s.Finish());
}

}  // namespace
}  // namespace agentkv

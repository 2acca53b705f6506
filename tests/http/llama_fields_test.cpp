#include "http/llama_fields.h"

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

// llama-server reads n as an int32_t, so -4294967294 (not > 1) became 2
// completions, the second on a slot of llama-server's choosing, possibly one
// holding another agent's KV (fuzz/front_fuzz's seed completion-n).
TEST(LlamaFields, AnNThatLlamaServerWouldTruncateToSeveralIsRejected) {
  EXPECT_FALSE(CheckInferenceBody(json{{"n", -4294967294LL}}).ok());
  EXPECT_FALSE(CheckInferenceBody(json{{"n_cmpl", -4294967295LL}}).ok());
  EXPECT_FALSE(CheckInferenceBody(json{{"n", -1e300}}).ok());
  EXPECT_FALSE(CheckInferenceBody(json{{"n", 18446744073709551615ULL}}).ok());
  EXPECT_TRUE(CheckInferenceBody(json{{"n", -2147483648LL}}).ok());
  EXPECT_TRUE(CheckInferenceBody(json{{"n", nullptr}, {"n_cmpl", 1}}).ok());
  EXPECT_TRUE(CheckInferenceBody(json{{"n", "2"}}).ok()) << "llama-server refuses a string itself";
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

TimingsScanner Scanned(const std::string& answer) {
  TimingsScanner s;
  s.Feed(answer.data(), answer.size());
  return s;
}

TEST(LlamaFields, ReadsHowTheTurnEndedFromEachApisAnswer) {
  const std::string timings = R"("timings":{"cache_n":1,"prompt_n":2})";
  const std::pair<std::string, TurnFinish> cases[] = {
      // OpenAI chat, whole.
      {R"({"choices":[{"finish_reason":"tool_calls","message":{}}],)" + timings + "}",
       TurnFinish::kToolCalls},
      {R"({"choices":[{"finish_reason":"length"}],)" + timings + "}", TurnFinish::kLength},
      // OpenAI chat, streamed: tokens say null, the last event says why.
      {"data: {\"choices\":[{\"finish_reason\":null,\"delta\":{\"content\":\"a\"}}]}\n\n"
       "data: {\"choices\":[{\"finish_reason\":\"stop\",\"delta\":{}}]," +
           timings + "}\n\ndata: [DONE]\n\n",
       TurnFinish::kStop},
      // Anthropic's messages, whole and streamed.
      {R"({"stop_reason":"tool_use","content":[],)" + timings + "}", TurnFinish::kToolCalls},
      {"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n"
       "data: {\"type\":\"message_stop\"," +
           timings + "}\n\n",
       TurnFinish::kStop},
      // llama-server's /completion.
      {R"({"content":"x","stop":true,"stop_type":"limit",)" + timings + "}", TurnFinish::kLength},
      {R"({"content":"x","stop":true,"stop_type":"eos",)" + timings + "}", TurnFinish::kStop},
      // Nothing said, or something agentkv does not know.
      {"{" + timings + "}", TurnFinish::kUnknown},
      {R"({"choices":[{"finish_reason":"content_filter"}],)" + timings + "}", TurnFinish::kUnknown},
  };
  for (const auto& [answer, finish] : cases) {
    std::optional<Timings> t = Scanned(answer).Finish();
    ASSERT_TRUE(t) << answer;
    EXPECT_EQ(t->finish, finish) << answer;
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

TEST(LlamaFields, AFloatTooLargeForACountReadsAsZero) {
  TimingsScanner s;
  const std::string body = R"({"timings":{"cache_n":1e300,"prompt_n":2.5,"prompt_ms":1e300}})";
  s.Feed(body.data(), body.size());
  std::optional<Timings> t = s.Finish();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->cache_n, 0);
  EXPECT_EQ(t->prompt_n, 0);
  EXPECT_EQ(t->prompt_ms, 1e300);
}

TEST(LlamaFields, NoTimingsInAnErrorBody) {
  TimingsScanner s;
  const std::string body = R"({"error":{"code":400}})";
  s.Feed(body.data(), body.size());
  EXPECT_FALSE(s.Finish());
}

TEST(LlamaFields, ImagesAndAudioAreFoundInEveryRequestShape) {
  const json image = {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,AA"}}}};
  const json text = {{"type", "text"}, {"text", "hello"}};
  EXPECT_TRUE(CarriesMedia({{"messages", {{{"role", "user"}, {"content", {text, image}}}}}}));
  EXPECT_TRUE(
      CarriesMedia({{"input", {{{"role", "user"}, {"content", {{{"type", "input_image"}}}}}}}}));
  EXPECT_TRUE(CarriesMedia({{"prompt", "x"}, {"multimodal_data", {"AA"}}}));
  EXPECT_FALSE(CarriesMedia({{"messages", {{{"role", "user"}, {"content", {text}}}}}}));
  EXPECT_FALSE(CarriesMedia({{"messages", {{{"role", "user"}, {"content", "plain"}}}}}));
  EXPECT_FALSE(CarriesMedia({{"input", "plain"}}));
  EXPECT_FALSE(CarriesMedia(json::array()));
}

TEST(LlamaFields, APromptKeyIsTheRequestsStartAndNothingShorter) {
  const json system = {{"role", "system"}, {"content", "you are a planner"}};
  const json a = {{"messages", {system, {{"role", "user"}, {"content", "one"}}}}};
  const json b = {{"messages", {system, {{"role", "user"}, {"content", "two"}}}}};
  EXPECT_NE(PromptKeyOf(a), 0u);
  EXPECT_EQ(PromptKeyOf(a), PromptKeyOf(b));
  EXPECT_NE(PromptKeyOf(a), PromptKeyOf({{"messages", {{{"role", "system"}, {"content", "x"}}}}}));
  const std::string head(kPromptKeyChars, 'h');
  EXPECT_EQ(PromptKeyOf({{"prompt", head + "1"}}), PromptKeyOf({{"prompt", head + "2"}}));
  EXPECT_EQ(PromptKeyOf({{"prompt", "short"}}), 0u) << "shorter than the head: unknown";
  json ids = json::array();
  for (int i = 0; i < 20; ++i) ids.push_back(i);
  json more = ids;
  more.push_back(99);
  EXPECT_EQ(PromptKeyOf({{"prompt", ids}}), PromptKeyOf({{"prompt", more}}));
  EXPECT_NE(PromptKeyOf({{"prompt", ids}}), PromptKeyOf({{"prompt", head}}));
  EXPECT_EQ(PromptKeyOf({{"n_predict", 4}}), 0u);
}

}  // namespace
}  // namespace agentkv

#include "core/activity.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

RequestRecord Ran(const char* agent, Placement p, long long cache_n, long long prompt_n,
                  long long ttft_ms = 10) {
  RequestRecord r;
  if (agent) r.agent = Id(agent);
  r.slot = SlotId{0};
  r.placement = p;
  r.status = 200;
  r.cache_n = cache_n;
  r.prompt_n = prompt_n;
  r.ttft = std::chrono::milliseconds(ttft_ms);
  r.total = std::chrono::milliseconds(ttft_ms + 5);
  return r;
}

class ActivityTest : public ::testing::Test {
 protected:
  std::int64_t now_ms_ = 1'700'000'000'000;
  Activity::WallClock Clock() {
    return [this] { return now_ms_; };
  }
};

TEST_F(ActivityTest, CountsEachAgentsPlacementsAndReuse) {
  Activity activity({}, Clock());
  activity.Record(Ran("a", Placement::kCold, 0, 100));
  now_ms_ += 1000;
  activity.Record(Ran("a", Placement::kRestored, 100, 20));
  activity.Record(Ran(nullptr, Placement::kStateless, -1, -1));
  const auto agents = activity.Agents();
  ASSERT_EQ(agents.size(), 1u) << "a stateless request belongs to no agent";
  const AgentActivity& a = agents.at(Id("a"));
  EXPECT_EQ(a.requests, 2);
  EXPECT_EQ(a.placements[static_cast<size_t>(Placement::kCold)], 1);
  EXPECT_EQ(a.placements[static_cast<size_t>(Placement::kRestored)], 1);
  EXPECT_EQ(a.tokens_reused, 100);
  EXPECT_EQ(a.tokens_prefilled, 120);
  EXPECT_EQ(a.last_ms, now_ms_);
}

TEST_F(ActivityTest, KeepsTheMostRecentRequestsNewestFirstWithinItsLimit) {
  ActivityLimits limits;
  limits.recent = 3;
  Activity activity(limits, Clock());
  for (long long i = 0; i < 5; ++i) activity.Record(Ran("a", Placement::kResident, i, 1));
  const std::vector<RequestRecord> recent = activity.Recent(10);
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].cache_n, 4);
  EXPECT_EQ(recent[2].cache_n, 2);
  EXPECT_EQ(recent[0].at_ms, now_ms_);
  EXPECT_EQ(activity.Recent(1).size(), 1u);
}

TEST_F(ActivityTest, DropsTheLeastRecentAgentPastItsLimit) {
  ActivityLimits limits;
  limits.agents = 2;
  Activity activity(limits, Clock());
  activity.Record(Ran("a", Placement::kCold, 0, 1));
  now_ms_ += 1;
  activity.Record(Ran("b", Placement::kCold, 0, 1));
  now_ms_ += 1;
  activity.Record(Ran("a", Placement::kResident, 1, 1));
  now_ms_ += 1;
  activity.Record(Ran("c", Placement::kCold, 0, 1));
  const auto agents = activity.Agents();
  EXPECT_EQ(agents.size(), 2u);
  EXPECT_EQ(agents.count(Id("b")), 0u);
}

TEST_F(ActivityTest, RecordsHowAnAgentsTurnEndedAndTheGapBeforeItCameBack) {
  Activity a({}, Clock());
  RequestRecord first = Ran("coder", Placement::kCold, 0, 10);
  first.finish = TurnFinish::kToolCalls;
  first.next = NextHint{NextHint::Kind::kSeconds, 2.5};
  EXPECT_FALSE(a.Record(first)) << "a first turn is no return";
  ASSERT_TRUE(a.Of(Id("coder")));
  EXPECT_EQ(a.Of(Id("coder"))->last_finish, TurnFinish::kToolCalls);
  EXPECT_EQ(NextHintText(*a.Of(Id("coder"))->next), "2.5");
  EXPECT_EQ(a.Of(Id("coder"))->last_gap_ms, -1);

  now_ms_ += 4000;  // the next turn ends 4 s later and took 15 ms: it came back after 3,985 ms
  RequestRecord second = Ran("coder", Placement::kResident, 10, 2);
  second.finish = TurnFinish::kStop;
  std::optional<Return> back = a.Record(second);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->after, TurnFinish::kToolCalls);
  EXPECT_EQ(back->gap_ms, 3985);
  EXPECT_EQ(a.Of(Id("coder"))->last_finish, TurnFinish::kStop);
  EXPECT_FALSE(a.Of(Id("coder"))->next) << "this request said nothing of the next";
  EXPECT_EQ(a.Of(Id("coder"))->last_gap_ms, 3985);
  EXPECT_FALSE(a.Of(Id("planner")));
  EXPECT_FALSE(a.Record(Ran(nullptr, Placement::kStateless, 0, 1))) << "nobody's request";
}

TEST(NextHint, ATurnsEndSaysWhenTheAgentIsExpectedBack) {
  using std::chrono::milliseconds;
  const milliseconds tool(7000);
  using Pair = std::pair<Expect, milliseconds>;
  EXPECT_EQ(ExpectationOf(TurnFinish::kToolCalls, std::nullopt, tool),
            Pair(Expect::kReturning, tool));
  EXPECT_EQ(ExpectationOf(TurnFinish::kStop, std::nullopt, tool),
            Pair(Expect::kPerson, milliseconds(0)));
  EXPECT_EQ(ExpectationOf(TurnFinish::kLength, std::nullopt, tool),
            Pair(Expect::kPerson, milliseconds(0)));
  EXPECT_EQ(ExpectationOf(TurnFinish::kAborted, std::nullopt, tool),
            Pair(Expect::kUnknown, milliseconds(0)));
  // The client's word wins over the finish reason.
  EXPECT_EQ(ExpectationOf(TurnFinish::kToolCalls, NextHint{NextHint::Kind::kDone, 0}, tool),
            Pair(Expect::kDone, milliseconds(0)));
  EXPECT_EQ(ExpectationOf(TurnFinish::kStop, NextHint{NextHint::Kind::kTool, 0}, tool),
            Pair(Expect::kReturning, tool));
  EXPECT_EQ(ExpectationOf(TurnFinish::kStop, NextHint{NextHint::Kind::kSeconds, 1.5}, tool),
            Pair(Expect::kReturning, milliseconds(1500)));
}

TEST_F(ActivityTest, LearnsHowLongAgentsOfAScopeTakeToComeBackAfterAToolCall) {
  Activity a({}, Clock());
  const AgentId agent = Id("coder");
  EXPECT_FALSE(a.TypicalGap(agent, TurnFinish::kToolCalls)) << "nothing seen yet";
  RequestRecord tool = Ran("coder", Placement::kCold, 0, 10);
  tool.finish = TurnFinish::kToolCalls;
  a.Record(tool);
  for (int gap_s : {5, 10}) {
    now_ms_ += gap_s * 1000 + 15;  // the turn took 15 ms: it came back gap_s after
    a.Record(tool);
  }
  // The first gap, then 0.8 of it and 0.2 of the second: 5 s, then 6 s.
  EXPECT_EQ(a.TypicalGap(agent, TurnFinish::kToolCalls), std::chrono::milliseconds(6000));
  EXPECT_FALSE(a.TypicalGap(agent, TurnFinish::kStop));
  EXPECT_EQ(a.TypicalGap(Id("planner"), TurnFinish::kToolCalls), std::chrono::milliseconds(6000))
      << "the same scope (no keys)";
  EXPECT_FALSE(a.TypicalGap(AgentId::InNamespace(agent, "k1"), TurnFinish::kToolCalls))
      << "another key's agents learn apart";
}

TEST(NextHint, ReadsAsWritten) {
  EXPECT_EQ(NextHintText({NextHint::Kind::kTool, 0}), "tool");
  EXPECT_EQ(NextHintText({NextHint::Kind::kDone, 0}), "done");
  EXPECT_EQ(NextHintText({NextHint::Kind::kSeconds, 30}), "30");
  EXPECT_EQ(NextHintText({NextHint::Kind::kSeconds, 0}), "0");
  EXPECT_EQ(NextHintText({NextHint::Kind::kSeconds, 0.25}), "0.25");
  EXPECT_STREQ(FinishName(TurnFinish::kToolCalls), "tool_calls");
  EXPECT_STREQ(FinishName(TurnFinish::kAborted), "aborted");
}

TEST_F(ActivityTest, ForgetsAnAgentsCounts) {
  Activity activity({}, Clock());
  activity.Record(Ran("a", Placement::kCold, 0, 1));
  activity.Forget(Id("a"));
  EXPECT_TRUE(activity.Agents().empty());
  EXPECT_EQ(activity.Recent(5).size(), 1u);
}

TEST_F(ActivityTest, BucketsTimeToFirstTokenByPlacementOverTheLastMinutes) {
  ActivityLimits limits;
  limits.bucket = std::chrono::milliseconds(10000);
  limits.buckets = 6;
  now_ms_ = 1'000'000;  // on a bucket's start
  Activity activity(limits, Clock());
  activity.Record(Ran("a", Placement::kCold, 0, 10, 400));
  activity.Record(Ran("b", Placement::kCold, 0, 10, 200));
  now_ms_ += 25000;
  activity.Record(Ran("a", Placement::kRestored, 10, 1, 30));
  RequestRecord no_answer = Ran("b", Placement::kResident, -1, -1);
  no_answer.ttft = std::chrono::milliseconds(-1);
  activity.Record(no_answer);

  std::vector<TtftBucket> buckets = activity.Ttft();
  ASSERT_EQ(buckets.size(), 6u);
  EXPECT_EQ(buckets.back().start_ms, 1'020'000);
  EXPECT_EQ(buckets.front().start_ms, 970'000);
  const TtftBucket& first = buckets[3];
  ASSERT_EQ(first.start_ms, 1'000'000);
  const TtftBucket::Cell& cold = first.by_placement[static_cast<size_t>(Placement::kCold)];
  EXPECT_EQ(cold.count, 2);
  EXPECT_DOUBLE_EQ(cold.sum_ms, 600);
  EXPECT_DOUBLE_EQ(cold.max_ms, 400);
  EXPECT_EQ(buckets.back().by_placement[static_cast<size_t>(Placement::kRestored)].count, 1);
  EXPECT_EQ(buckets.back().by_placement[static_cast<size_t>(Placement::kResident)].count, 0)
      << "a request without a first byte has no TTFT";

  now_ms_ += 60000;  // the ring has come round: old buckets are not shown again
  buckets = activity.Ttft();
  for (const TtftBucket& b : buckets) {
    for (const TtftBucket::Cell& c : b.by_placement) EXPECT_EQ(c.count, 0);
  }
}

}  // namespace
}  // namespace agentkv

#include "agentkv/residency.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

// Runs a plan as if every upstream step succeeded and the request finished.
Placement Serve(Residency& r, const Tenant& t, TimePoint now) {
  std::optional<Plan> plan = r.TryAcquire(t);
  EXPECT_TRUE(plan.has_value());
  SwitchOutcome ok{true, true, true};
  Result<Placement> placed = r.CompleteSwitch(*plan, ok);
  EXPECT_TRUE(placed.ok());
  r.Release(plan->slot, now);
  return placed.value();
}

class ResidencyTest : public ::testing::Test {
 protected:
  TimePoint At(int seconds) { return TimePoint{} + std::chrono::seconds(seconds); }
};

TEST_F(ResidencyTest, ErasesAFreshSlotBeforeANewAgentUsesIt) {
  Residency r(2);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->slot.value, 0);
  EXPECT_TRUE(plan->erase);
  EXPECT_FALSE(plan->restore);
  EXPECT_FALSE(plan->evicted);
}

TEST_F(ResidencyTest, AReturningResidentAgentNeedsNoUpstreamStep) {
  Residency r(2);
  EXPECT_EQ(Serve(r, Id("a"), At(1)), Placement::kCold);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->resident);
  EXPECT_FALSE(plan->NeedsUpstream());
  EXPECT_EQ(r.CompleteSwitch(*plan, {}).value(), Placement::kResident);
}

TEST_F(ResidencyTest, EvictsLeastRecentlyUsedIdleSlotWhenAllAreTaken) {
  Residency r(2);
  Serve(r, Id("a"), At(1));  // slot 0
  Serve(r, Id("b"), At(2));  // slot 1
  Serve(r, Id("a"), At(3));  // a is now the most recent
  std::optional<Plan> plan = r.TryAcquire(Id("c"));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->slot.value, 1);
  ASSERT_TRUE(plan->evicted);
  EXPECT_EQ(*plan->evicted, Id("b"));
  EXPECT_TRUE(plan->save_evicted);
  EXPECT_TRUE(plan->erase) << "c must not see b's KV";
  EXPECT_FALSE(plan->restore);
}

TEST_F(ResidencyTest, RestoresAnEvictedAgentFromItsFileWhenItReturns) {
  Residency r(1);
  Serve(r, Id("a"), At(1));
  EXPECT_EQ(Serve(r, Id("b"), At(2)), Placement::kCold);  // evicts and saves a
  EXPECT_TRUE(r.HasFile(Id("a")));
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->restore);
  EXPECT_FALSE(plan->erase) << "a restore replaces the slot's KV";
  EXPECT_EQ(*plan->evicted, Id("b"));
  EXPECT_EQ(r.CompleteSwitch(*plan, {true, true, false}).value(), Placement::kRestored);
}

TEST_F(ResidencyTest, SerializesRequestsOfOneAgent) {
  Residency r(2);
  std::optional<Plan> first = r.TryAcquire(Id("a"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "while switching";
  r.CompleteSwitch(*first, {true, true, true});
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "while busy";
  EXPECT_TRUE(r.TryAcquire(Id("b"))) << "other agents run in parallel";
  r.Release(first->slot, At(1));
  EXPECT_TRUE(r.TryAcquire(Id("a")));
}

TEST_F(ResidencyTest, AnAgentBeingSavedOutWaitsUntilTheSaveEnds) {
  Residency r(1);
  Serve(r, Id("a"), At(1));
  std::optional<Plan> b = r.TryAcquire(Id("b"));
  ASSERT_TRUE(b);
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "its file is being written";
  r.CompleteSwitch(*b, {true, false, true});
  r.Release(b->slot, At(2));
  std::optional<Plan> a = r.TryAcquire(Id("a"));
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->restore);
}

TEST_F(ResidencyTest, WaitsWhenEverySlotIsBusy) {
  Residency r(2);
  ASSERT_TRUE(r.TryAcquire(Id("a")));
  ASSERT_TRUE(r.TryAcquire(Id("b")));
  EXPECT_FALSE(r.TryAcquire(Id("c")));
  EXPECT_FALSE(r.TryAcquire(Tenant()));
}

TEST_F(ResidencyTest, AStatelessRequestLeavesNoKVForTheNextTenant) {
  Residency r(1);
  EXPECT_EQ(Serve(r, Tenant(), At(1)), Placement::kStateless);
  EXPECT_EQ(r.View(SlotId{0}).phase, SlotPhase::kFree);
  EXPECT_TRUE(r.View(SlotId{0}).stale);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->erase);
  EXPECT_FALSE(plan->evicted);
}

TEST_F(ResidencyTest, PrefersAnEmptyFreeSlotToAStaleOne) {
  Residency r(2);
  std::optional<Plan> a = r.TryAcquire(Id("a"));  // slot 0, erased: empty
  r.CompleteSwitch(*a, {true, true, true});
  r.Release(a->slot, At(1));
  std::optional<Plan> s = r.TryAcquire(Tenant());  // slot 1, stale
  EXPECT_EQ(s->slot.value, 1);
  r.CompleteSwitch(*s, {true, true, true});
  r.Release(s->slot, At(2));  // slot 1 free and stale again
  // Evicting a is not needed; a new agent takes the stale free slot.
  std::optional<Plan> b = r.TryAcquire(Id("b"));
  EXPECT_EQ(b->slot.value, 1);
  EXPECT_FALSE(b->evicted);
  EXPECT_TRUE(b->erase);
}

TEST_F(ResidencyTest, AFailedRestoreFallsBackToAnErasedSlotAndForgetsTheFile) {
  Residency r(1);
  Serve(r, Id("a"), At(1));
  Serve(r, Id("b"), At(2));
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan->restore);
  Result<Placement> placed = r.CompleteSwitch(*plan, {true, false, true});
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(placed.value(), Placement::kCold);
  EXPECT_FALSE(r.HasFile(Id("a")));
}

TEST_F(ResidencyTest, ASlotThatCouldNotBeErasedIsNeverHandedOut) {
  Residency r(1);
  Serve(r, Id("a"), At(1));
  std::optional<Plan> plan = r.TryAcquire(Id("b"));
  ASSERT_TRUE(plan->erase);
  Result<Placement> placed = r.CompleteSwitch(*plan, {true, false, false});
  EXPECT_FALSE(placed.ok());
  EXPECT_EQ(placed.status().code(), ErrorCode::kUpstreamError);
  EXPECT_EQ(r.View(SlotId{0}).phase, SlotPhase::kFree);
  EXPECT_TRUE(r.View(SlotId{0}).stale);
  EXPECT_FALSE(r.SlotOf(Id("a"))) << "a's KV may be gone: not resident";
  EXPECT_TRUE(r.HasFile(Id("a"))) << "but it was saved first";
  std::optional<Plan> retry = r.TryAcquire(Id("b"));
  ASSERT_TRUE(retry);
  EXPECT_TRUE(retry->erase);
}

TEST_F(ResidencyTest, AFailedSaveKeepsTheOlderFileAndStillEvicts) {
  Residency r(1);
  Serve(r, Id("a"), At(1));
  std::optional<Plan> plan = r.TryAcquire(Id("b"));
  ASSERT_TRUE(plan->save_evicted);
  ASSERT_TRUE(r.CompleteSwitch(*plan, {false, false, true}).ok());
  EXPECT_FALSE(r.HasFile(Id("a"))) << "no file was ever written";
  EXPECT_EQ(r.SlotOf(Id("b"))->value, 0);
  EXPECT_FALSE(r.SlotOf(Id("a")));
}

TEST_F(ResidencyTest, ARestoredAgentIsCleanUntilItsNextRequestEnds) {
  Residency r(1);
  Serve(r, Id("a"), At(1));
  Serve(r, Id("b"), At(2));
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  r.CompleteSwitch(*plan, {true, true, false});
  EXPECT_FALSE(r.View(plan->slot).dirty);
  r.Release(plan->slot, At(3));
  EXPECT_TRUE(r.View(plan->slot).dirty);
}

}  // namespace
}  // namespace agentkv

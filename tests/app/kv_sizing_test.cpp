#include "app/kv_sizing.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

const KvCost kCost{1000, 50000};  // 1 KB a token, 50 KB a slot

TEST(KvSizing, AContextPerSlotGivesAsManySlotsAsTheBudgetHolds) {
  Result<SlotPlan> p = PlanSlots(kCost, 3'200'000, 2, 1000);  // a slot: 1.05 MB
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->slots, 3);
  EXPECT_EQ(p->ctx_per_slot, 1000);
}

TEST(KvSizing, ASlotCountGetsTheLargestContextTheBudgetHolds) {
  Result<SlotPlan> p = PlanSlots(kCost, 2'100'000, 2, 0);  // 1.05 MB a slot
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->slots, 2);
  EXPECT_EQ(p->ctx_per_slot, 1000);
}

TEST(KvSizing, ABudgetThatCannotHoldOneSlotIsRefusedSayingWhatOneTakes) {
  Result<SlotPlan> p = PlanSlots(kCost, 200'000, 1, 1000);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("1050000 bytes"), std::string::npos) << p.status().message();
  EXPECT_FALSE(PlanSlots(kCost, 200'000, 4, 0).ok()) << "4 slots of under 256 tokens";
}

}  // namespace
}  // namespace agentkv

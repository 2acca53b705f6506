#include "agentkv/slot_pool.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace agentkv {
namespace {

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

TimePoint FakeNow() { return TimePoint{}; }

bool NoFiles(const AgentId&) { return false; }

// Spins (yielding, no sleep) until `done` holds.
template <typename F>
void WaitUntil(F done) {
  while (!done()) std::this_thread::yield();
}

TEST(SlotPool, RefusesAtOnceWhenTheQueueIsFull) {
  SlotPool pool(1, QueueLimits{0, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  ASSERT_TRUE(pool.Acquire(Id("a")).ok());
  Result<Plan> b = pool.Acquire(Id("b"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kBusy);
}

TEST(SlotPool, GivesUpAfterTheMaximumWait) {
  SlotPool pool(1, QueueLimits{4, std::chrono::milliseconds(0)}, &NoFiles, 0, &FakeNow);
  ASSERT_TRUE(pool.Acquire(Id("a")).ok());
  Result<Plan> b = pool.Acquire(Id("b"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kBusy);
  EXPECT_EQ(pool.waiting(), 0);
}

TEST(SlotPool, AWaiterProceedsWhenTheSlotIsReleased) {
  SlotPool pool(1, QueueLimits{4, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  Result<Plan> a = pool.Acquire(Id("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool.CompleteSwitch(a.value(), {true, true, true}).ok());

  auto b = std::async(std::launch::async, [&] { return pool.Acquire(Id("b")); });
  WaitUntil([&] { return pool.waiting() == 1; });
  pool.Release(a->slot, 10);
  Result<Plan> got = b.get();
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->evicted);
  EXPECT_EQ(*got->evicted, Id("a"));
  EXPECT_TRUE(got->save_evicted);
}

TEST(SlotPool, ASecondRequestOfTheSameAgentWaitsForTheFirst) {
  SlotPool pool(2, QueueLimits{4, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  Result<Plan> first = pool.Acquire(Id("a"));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(pool.CompleteSwitch(first.value(), {true, true, true}).ok());
  auto second = std::async(std::launch::async, [&] { return pool.Acquire(Id("a")); });
  WaitUntil([&] { return pool.waiting() == 1; });
  pool.Release(first->slot, 10);
  Result<Plan> got = second.get();
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->resident);
  EXPECT_EQ(got->slot.value, first->slot.value);
}

TEST(SlotPool, ShutdownReleasesWaitersWithBusy) {
  SlotPool pool(1, QueueLimits{4, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  ASSERT_TRUE(pool.Acquire(Id("a")).ok());
  auto b = std::async(std::launch::async, [&] { return pool.Acquire(Id("b")); });
  WaitUntil([&] { return pool.waiting() == 1; });
  pool.Shutdown();
  Result<Plan> got = b.get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), ErrorCode::kBusy);
  EXPECT_FALSE(pool.Acquire(Id("c")).ok());
}

}  // namespace
}  // namespace agentkv

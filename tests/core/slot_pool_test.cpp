#include "core/slot_pool.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>
#include <vector>

namespace agentkv {
namespace {

AgentId Id(const char* s) { return AgentId::ParseQualified(s).value(); }

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
  pool.Release(a->slot, TurnEnd::Ran(10));
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
  pool.Release(first->slot, TurnEnd::Ran(10));
  Result<Plan> got = second.get();
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->resident);
  EXPECT_EQ(got->slot.value, first->slot.value);
}

// Waiters are served in arrival order, and a newcomer queues behind them.
TEST(SlotPool, WaitersGetTheSlotFirstComeFirstServed) {
  SlotPool pool(1, QueueLimits{8, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  Result<Plan> a = pool.Acquire(Id("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool.CompleteSwitch(a.value(), {true, true, true}).ok());
  std::vector<std::future<Result<Plan>>> waiters;
  for (const char* id : {"b", "c", "d"}) {
    const int before = pool.waiting();
    waiters.push_back(std::async(std::launch::async, [&pool, id] { return pool.Acquire(Id(id)); }));
    WaitUntil([&] { return pool.waiting() == before + 1; });
  }
  pool.Release(a->slot, TurnEnd::Ran(10));
  Result<Plan> b = waiters[0].get();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(pool.waiting(), 2);  // c and d still wait
  auto e = std::async(std::launch::async, [&] { return pool.Acquire(Id("e")); });
  WaitUntil([&] { return pool.waiting() == 3; });  // the newcomer queued behind them
  ASSERT_TRUE(pool.CompleteSwitch(b.value(), {true, true, true}).ok());
  pool.Release(b->slot, TurnEnd::Ran(10));
  Result<Plan> c = waiters[1].get();
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->evicted);
  EXPECT_EQ(*c->evicted, Id("b"));
  EXPECT_EQ(pool.waiting(), 2);
  ASSERT_TRUE(pool.CompleteSwitch(c.value(), {true, true, true}).ok());
  pool.Release(c->slot, TurnEnd::Ran(10));
  ASSERT_TRUE(waiters[2].get().ok());  // d before e
  EXPECT_EQ(pool.waiting(), 1);
  pool.Shutdown();
  EXPECT_FALSE(e.get().ok());
}

// A waiter whose agent is still busy does not block one behind it.
TEST(SlotPool, AWaiterForABusyAgentDoesNotHoldUpOthers) {
  SlotPool pool(2, QueueLimits{8, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  Result<Plan> a = pool.Acquire(Id("a"));
  Result<Plan> b = pool.Acquire(Id("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(pool.CompleteSwitch(a.value(), {true, true, true}).ok());
  ASSERT_TRUE(pool.CompleteSwitch(b.value(), {true, true, true}).ok());
  auto a2 = std::async(std::launch::async, [&] { return pool.Acquire(Id("a")); });
  WaitUntil([&] { return pool.waiting() == 1; });
  auto c = std::async(std::launch::async, [&] { return pool.Acquire(Id("c")); });
  WaitUntil([&] { return pool.waiting() == 2; });
  pool.Release(b->slot, TurnEnd::Ran(10));  // a is still busy: c takes b's slot
  Result<Plan> got = c.get();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->slot.value, b->slot.value);
  EXPECT_EQ(pool.waiting(), 1);
  pool.Release(a->slot, TurnEnd::Ran(10));
  ASSERT_TRUE(a2.get().ok());
}

// A queue full of requests for one busy agent does not turn away another
// agent that has a free slot.
TEST(SlotPool, AFullQueueOfABusyAgentDoesNotRefuseAFreeSlot) {
  SlotPool pool(2, QueueLimits{1, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  Result<Plan> a = pool.Acquire(Id("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool.CompleteSwitch(a.value(), {true, true, true}).ok());
  auto a2 = std::async(std::launch::async, [&] { return pool.Acquire(Id("a")); });
  WaitUntil([&] { return pool.waiting() == 1; });  // the queue is full
  Result<Plan> b = pool.Acquire(Id("b"));
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_NE(b->slot.value, a->slot.value);
  pool.Release(a->slot, TurnEnd::Ran(10));
  ASSERT_TRUE(a2.get().ok());
}

// One agent flooding the queue takes only its share: another agent still
// gets a place, and the flooding agent's extra request is refused at once.
TEST(SlotPool, OneAgentCannotTakeEveryPlaceInTheQueue) {
  SlotPool pool(1, QueueLimits{4, std::chrono::milliseconds(60000), 2}, &NoFiles, 0, &FakeNow);
  Result<Plan> a = pool.Acquire(Id("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pool.CompleteSwitch(a.value(), {true, true, true}).ok());
  std::vector<std::future<Result<Plan>>> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.push_back(std::async(std::launch::async, [&] { return pool.Acquire(Id("a")); }));
    WaitUntil([&] { return pool.waiting() == i + 1; });
  }
  Result<Plan> third = pool.Acquire(Id("a"));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), ErrorCode::kBusy);
  EXPECT_NE(third.status().message().find("already has 2 requests waiting"), std::string::npos);
  auto b = std::async(std::launch::async, [&] { return pool.Acquire(Id("b")); });
  WaitUntil([&] { return pool.waiting() == 3; });  // b still queues
  pool.Shutdown();
  for (auto& w : waiters) EXPECT_FALSE(w.get().ok());
  EXPECT_FALSE(b.get().ok());
}

// Agents of two API keys ("id@key"): the key holding fewer slots is served
// first, whoever came first.
TEST(SlotPool, AWaiterOfTheKeyHoldingFewerSlotsIsServedFirst) {
  SlotPool pool(2, QueueLimits{8, std::chrono::milliseconds(60000)}, &NoFiles, 0, &FakeNow);
  Result<Plan> a1 = pool.Acquire(Id("a1@ka"));
  Result<Plan> a2 = pool.Acquire(Id("a2@ka"));
  ASSERT_TRUE(a1.ok() && a2.ok());
  ASSERT_TRUE(pool.CompleteSwitch(a1.value(), {true, true, true}).ok());
  ASSERT_TRUE(pool.CompleteSwitch(a2.value(), {true, true, true}).ok());
  auto a3 = std::async(std::launch::async, [&] { return pool.Acquire(Id("a3@ka")); });
  WaitUntil([&] { return pool.waiting() == 1; });
  auto b1 = std::async(std::launch::async, [&] { return pool.Acquire(Id("b1@kb")); });
  WaitUntil([&] { return pool.waiting() == 2; });
  pool.Release(a1->slot, TurnEnd::Ran(10));
  Result<Plan> b = b1.get();
  ASSERT_TRUE(b.ok()) << "kb holds no slot, ka one";
  EXPECT_EQ(pool.waiting(), 1);
  pool.Release(a2->slot, TurnEnd::Ran(10));
  EXPECT_TRUE(a3.get().ok());
}

TEST(SlotPool, OneKeyCannotTakeEveryPlaceInTheQueue) {
  SlotPool pool(1, QueueLimits{4, std::chrono::milliseconds(60000), 8, 2}, &NoFiles, 0, &FakeNow);
  Result<Plan> x = pool.Acquire(Id("x@ka"));
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE(pool.CompleteSwitch(x.value(), {true, true, true}).ok());
  std::vector<std::future<Result<Plan>>> waiters;
  for (const char* id : {"a@ka", "b@ka"}) {
    const int before = pool.waiting();
    waiters.push_back(std::async(std::launch::async, [&pool, id] { return pool.Acquire(Id(id)); }));
    WaitUntil([&] { return pool.waiting() == before + 1; });
  }
  Result<Plan> third = pool.Acquire(Id("c@ka"));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), ErrorCode::kBusy);
  EXPECT_NE(third.status().message().find("this API key already has 2 requests waiting"),
            std::string::npos)
      << third.status().message();
  auto other = std::async(std::launch::async, [&] { return pool.Acquire(Id("d@kb")); });
  WaitUntil([&] { return pool.waiting() == 3; });  // another key still queues
  pool.Shutdown();
  for (auto& w : waiters) EXPECT_FALSE(w.get().ok());
  EXPECT_FALSE(other.get().ok());
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

TEST(SlotPool, SnapshotSaysSinceWhenEachSlotHasHadItsPhaseAndOwner) {
  TimePoint now{};
  SlotPool pool(2, QueueLimits{4, std::chrono::milliseconds(60000)}, &NoFiles, 0,
                [&] { return now; });
  now += std::chrono::seconds(5);
  Result<Plan> a = pool.Acquire(Id("a"));
  ASSERT_TRUE(a.ok());
  now += std::chrono::seconds(1);
  ASSERT_TRUE(pool.CompleteSwitch(a.value(), {false, false, true}).ok());
  std::vector<SlotStatus> s = pool.Snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].view.phase, SlotPhase::kBusy);
  EXPECT_EQ(s[0].since, TimePoint{} + std::chrono::seconds(6));
  EXPECT_EQ(s[1].view.phase, SlotPhase::kFree);
  EXPECT_EQ(s[1].since, TimePoint{}) << "free since the start";

  now += std::chrono::seconds(3);
  pool.Release(a->slot, TurnEnd::Ran(10));
  s = pool.Snapshot();
  EXPECT_EQ(s[0].view.phase, SlotPhase::kIdle);
  EXPECT_EQ(s[0].view.owner, Id("a"));
  EXPECT_TRUE(s[0].view.dirty);
  EXPECT_EQ(s[0].since, TimePoint{} + std::chrono::seconds(9));
  now += std::chrono::seconds(3);
  pool.Unpin(Id("a"));  // a change of nothing the slot shows
  EXPECT_EQ(pool.Snapshot()[0].since, TimePoint{} + std::chrono::seconds(9));
}

}  // namespace
}  // namespace agentkv

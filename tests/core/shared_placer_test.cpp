// Two nodes (each a Placer over its own in-memory llama-server and its own
// Store) on one shared memory directory: an agent that moves between them
// is restored from the other's latest save, and a node whose resident slot
// is older than the directory's memory never serves it.
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/fake_slots.h"
#include "core/memory_ops.h"
#include "core/placer.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

constexpr PromptKey kKey = 42;

// One agentkv node: turn-end saves, as a shared directory requires.
struct Node {
  Node(const fs::path& dir, const std::string& name, int slots) {
    StoreOptions o;
    o.min_free_bytes = 0;
    o.node = name;
    store = std::make_unique<Store>(dir, "fp", o);
    EXPECT_TRUE(store->Open().ok());
    fake = std::make_unique<FakeSlots>(dir, slots);
    Store* s = store.get();
    pool = std::make_unique<SlotPool>(slots, QueueLimits{8, std::chrono::milliseconds(5000)},
                                      [s](const AgentId& a) { return s->HasMemory(a); });
    placer = std::make_unique<Placer>(*pool, *fake, *store, SavePolicy::kTurnEnd, metrics);
    memory = std::make_unique<MemoryOps>(*pool, *fake, *store, *placer, metrics);
  }
  ~Node() {
    memory->Stop();
    placer->Stop();
  }

  // One turn that leaves `tokens` in the slot; returns the placement and
  // the tokens the slot held when the request started (what it reused).
  std::pair<Placement, long long> Turn(const char* agent, long long tokens) {
    Result<Lease> lease = placer->Place(Id(agent));
    EXPECT_TRUE(lease.ok()) << lease.status().message();
    if (!lease.ok()) return {Placement::kStateless, -1};
    const long long held = fake->TokensIn(lease->slot());
    fake->Fill(lease->slot(), tokens);
    placer->Finish(lease.value(), held, tokens - held, TurnEnd::Ran(tokens, kKey));
    placer->DrainSaves();
    return {lease->placement(), held};
  }

  Metrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<FakeSlots> fake;
  std::unique_ptr<SlotPool> pool;
  std::unique_ptr<Placer> placer;
  std::unique_ptr<MemoryOps> memory;
};

class SharedPlacerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-shared-placer-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    a_ = std::make_unique<Node>(dir_, "node-a", 2);
    b_ = std::make_unique<Node>(dir_, "node-b", 2);
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<Node> a_, b_;
};

TEST_F(SharedPlacerTest, AnAgentAlternatingBetweenNodesIsRestoredWithItsLatestTurnEachTime) {
  EXPECT_EQ(a_->Turn("planner", 100), std::make_pair(Placement::kCold, 0LL));
  EXPECT_EQ(b_->Turn("planner", 200), std::make_pair(Placement::kRestored, 100LL));
  // a still holds its 100 tokens in a slot: stale, never served resident.
  EXPECT_EQ(a_->Turn("planner", 300), std::make_pair(Placement::kRestored, 200LL));
  EXPECT_EQ(a_->metrics.superseded.load(), 1);
  EXPECT_EQ(b_->Turn("planner", 400), std::make_pair(Placement::kRestored, 300LL));
  // Nobody else served it since a's last turn... but b did: superseded again.
  EXPECT_EQ(a_->Turn("planner", 500), std::make_pair(Placement::kRestored, 400LL));
  // Now a served it last: its slot is the newest, resident.
  EXPECT_EQ(a_->Turn("planner", 600), std::make_pair(Placement::kResident, 500LL));
  EXPECT_EQ(a_->metrics.superseded.load(), 2);
}

TEST_F(SharedPlacerTest, AnAgentDeletedOnOneNodeIsNotServedFromTheOthersSlot) {
  a_->Turn("critic", 100);
  ASSERT_TRUE(b_->memory->Forget(Id("critic")).ok());
  EXPECT_EQ(a_->Turn("critic", 50), std::make_pair(Placement::kCold, 0LL));
}

TEST_F(SharedPlacerTest, AForkOnOneNodeCopiesTheParentsLatestSaveFromTheOther) {
  a_->Turn("planner", 100);
  b_->Turn("planner", 250);
  ASSERT_TRUE(a_->memory->Fork(Id("planner"), Id("sub")).ok());
  EXPECT_EQ(b_->Turn("sub", 260), std::make_pair(Placement::kRestored, 250LL));
}

}  // namespace
}  // namespace agentkv

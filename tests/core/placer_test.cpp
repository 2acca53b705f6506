// Placer and MemoryOps against an in-memory llama-server (FakeSlots) and a real Store in a
// temporary directory: placement, fallbacks, quarantine and resets, without
// sockets. Saves run only when a test asks (eviction policy) unless noted.
#include "core/placer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <fstream>
#include <future>
#include <mutex>

#include "core/fake_slots.h"
#include "core/memory_ops.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

constexpr PromptKey kKey = 42, kOtherKey = 43;

class PlacerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-placer-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    memory_.reset();
    placer_.reset();
    fs::remove_all(dir_);
  }

  void Make(int slots, StoreOptions store_options = {}, ReuseChecks checks = {}) {
    store_options.min_free_bytes = 0;
    store_ = std::make_unique<Store>(dir_, "fp", store_options);
    ASSERT_TRUE(store_->Open().ok());
    fake_ = std::make_unique<FakeSlots>(dir_, slots);
    Store* store = store_.get();
    pool_ = std::make_unique<SlotPool>(
        slots, QueueLimits{8, std::chrono::milliseconds(5000)},
        [store](const AgentId& a) { return store->HasMemory(a); }, 1,
        [this] { return TimePoint{} + std::chrono::seconds(++clock_); });
    placer_ =
        std::make_unique<Placer>(*pool_, *fake_, *store_, SavePolicy::kEviction, metrics_, checks);
    memory_ = std::make_unique<MemoryOps>(*pool_, *fake_, *store_, *placer_, metrics_);
  }

  // One turn of `agent` that leaves `tokens` in its slot; returns how it was placed.
  Placement Turn(const char* agent, long long tokens, PromptKey key = kKey,
                 std::optional<long long> cache_n = std::nullopt) {
    Result<Lease> lease = placer_->Place(Id(agent));
    EXPECT_TRUE(lease.ok()) << lease.status().message();
    if (!lease.ok()) return Placement::kStateless;
    const Placement placed = lease->placement();
    const long long reused = cache_n.value_or(fake_->TokensIn(lease->slot()));
    fake_->Fill(lease->slot(), tokens);
    placer_->Finish(lease.value(), reused, tokens - reused, TurnEnd::Ran(tokens, key));
    return placed;
  }
  SlotId SlotOf(const char* agent) { return *pool_->SlotOf(Id(agent)); }
  // Nothing if the agent has no memory (or its count is unknown).
  TokenCount SavedTokens(const char* agent) {
    std::optional<MemoryInfo> m = store_->Find(Id(agent));
    return m ? m->tokens : std::nullopt;
  }
  // Saves `agent`'s slot now.
  bool Save(const char* agent) { return placer_->SaveIdle(SlotOf(agent)); }

  fs::path dir_;
  long long clock_ = 0;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FakeSlots> fake_;
  std::unique_ptr<SlotPool> pool_;
  std::unique_ptr<Placer> placer_;
  std::unique_ptr<MemoryOps> memory_;  // forks, forgetting, prefix snapshots
};

const Status kDown = Status::Error(ErrorCode::kUpstreamDown, "connection refused");
const Status kTimeout = Status::Error(ErrorCode::kUpstreamTimeout, "no answer in 600 s");
const Status kRefused = Status::Error(ErrorCode::kUpstreamError, "no space in the KV cache");

TEST_F(PlacerTest, APrefixSnapshotIsWrittenOnlyIfTheSlotHoldsExactlyItsTokens) {
  Make(1);
  const AgentId snapshot = AgentId::Internal("prefix.open.128.1");
  Result<Lease> lease = placer_->Place(Id("a"));
  ASSERT_TRUE(lease.ok());
  fake_->Fill(lease->slot(), 129);  // one token more than the prefix
  EXPECT_FALSE(memory_->SaveSnapshot(lease.value(), snapshot, 128, kKey));
  EXPECT_FALSE(store_->HasMemory(snapshot));
  fake_->Fill(lease->slot(), 128);
  EXPECT_TRUE(memory_->SaveSnapshot(lease.value(), snapshot, 128, kKey));
  EXPECT_EQ(store_->Find(snapshot)->tokens, 128);
}

TEST_F(PlacerTest, ANewAgentChoosesItsSnapshotOnceItHoldsASlot) {
  Make(1);
  const AgentId snapshot = AgentId::Internal("prefix.open.128.1");
  Result<Lease> first = placer_->Place(Id("a"));
  ASSERT_TRUE(first.ok());
  // b waits for the only slot; a snapshot is written meanwhile.
  auto second = std::async(std::launch::async, [&] {
    return placer_->Place(Id("b"), [&]() -> std::optional<AgentId> {
      if (!store_->HasMemory(snapshot)) return std::nullopt;
      return snapshot;
    });
  });
  fake_->Fill(first->slot(), 128);
  ASSERT_TRUE(memory_->SaveSnapshot(first.value(), snapshot, 128, kKey));
  placer_->Finish(first.value(), 0, 128, TurnEnd::Ran(128, kKey));
  Result<Lease> placed = second.get();
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(placed->placement(), Placement::kPrefix);
  EXPECT_EQ(fake_->TokensIn(placed->slot()), 128);
  // It builds a longer snapshot of 200 tokens first, then reuses all of
  // them: only 128 came from the snapshot it started from.
  placer_->Finish(placed.value(), 200, 10, TurnEnd::Ran(210, kKey));
  EXPECT_EQ(metrics_.prefix_hits.load(), 1);
  EXPECT_EQ(metrics_.prefix_tokens_reused.load(), 128);
}

// A prefix snapshot built on another agent's memory (PrefixPath::Build).
TEST_F(PlacerTest, ASnapshotSourceIsSavedFirstThenRestoredIntoTheBuildersSlot) {
  Make(2);
  Turn("a", 300);  // idle, its turn not saved yet
  Result<Lease> b = placer_->Place(Id("b"));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->placement(), Placement::kCold);
  Result<bool> filled = memory_->RestoreFrom(b.value(), Id("a"));
  ASSERT_TRUE(filled.ok());
  EXPECT_TRUE(filled.value());
  EXPECT_EQ(SavedTokens("a"), 300) << "a's latest turn is saved before it is read";
  EXPECT_EQ(fake_->TokensIn(b->slot()), 300);
  EXPECT_EQ(fake_->TokensIn(SlotOf("a")), 300) << "a keeps its slot";
  EXPECT_TRUE(memory_->Wipe(b.value()));
  EXPECT_EQ(fake_->TokensIn(b->slot()), 0);
}

TEST_F(PlacerTest, ABusySnapshotSourceOrOneWithoutMemoryIsNotRead) {
  Make(2);
  Result<Lease> a = placer_->Place(Id("a"));  // a request of a is running
  ASSERT_TRUE(a.ok());
  fake_->Fill(a->slot(), 300);
  Result<Lease> b = placer_->Place(Id("b"));
  ASSERT_TRUE(b.ok());
  for (const char* source : {"a", "nobody"}) {
    SCOPED_TRACE(source);
    Result<bool> filled = memory_->RestoreFrom(b.value(), Id(source));
    ASSERT_TRUE(filled.ok());
    EXPECT_FALSE(filled.value());
  }
  for (const std::string& call : fake_->calls()) {
    EXPECT_EQ(call.rfind("restore", 0), std::string::npos) << call;
    EXPECT_EQ(call.rfind("save", 0), std::string::npos) << call;
  }
}

TEST_F(PlacerTest, ASnapshotSourceThatFailsToRestoreLeavesTheBuildersSlotErasedAndItsFile) {
  Make(2);
  Turn("a", 300);
  ASSERT_TRUE(Save("a"));
  Result<Lease> b = placer_->Place(Id("b"));
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < Placer::kMaxRefusals; ++i) {
    fake_->FailRestores(kRefused);
    Result<bool> filled = memory_->RestoreFrom(b.value(), Id("a"));
    ASSERT_TRUE(filled.ok());
    EXPECT_FALSE(filled.value());
    EXPECT_EQ(fake_->calls().back(), "erase " + std::to_string(b->slot().value));
  }
  EXPECT_TRUE(store_->HasMemory(Id("a"))) << "not a's placement: its refusals do not count";
  EXPECT_EQ(store_->quarantined(), 0);
}

TEST_F(PlacerTest, ARestoreThatFailsInTransportOrTimesOutLeavesTheFileInPlace) {
  Make(1);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  for (const Status& fault : {kDown, kTimeout}) {
    SCOPED_TRACE(fault.message());
    Turn("b", 50);  // evicts a
    fake_->FailRestores(fault);
    EXPECT_EQ(Turn("a", 120), Placement::kCold) << "prefilled for this request";
    EXPECT_EQ(store_->quarantined(), 0);
    ASSERT_TRUE(store_->HasMemory(Id("a"))) << "the file stays";
  }
  Turn("b", 50);
  EXPECT_EQ(Turn("a", 130), Placement::kRestored);
  EXPECT_EQ(metrics_.fallbacks, 2);
}

TEST_F(PlacerTest, ARefusedRestoreKeepsTheFileUntilItIsRefusedThreeTimesInARow) {
  Make(1);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Turn("b", 50);
  fake_->FailRestores(kRefused);
  EXPECT_EQ(Turn("a", 100), Placement::kCold);
  EXPECT_TRUE(store_->HasMemory(Id("a"))) << "once proves nothing";
  Turn("b", 50);
  EXPECT_EQ(Turn("a", 100), Placement::kRestored) << "and a success clears the count";

  // The same file refused again and again: a's requests are refused too,
  // so nothing new of a is saved in between.
  Turn("b", 50);
  for (int i = 1; i <= Placer::kMaxRefusals; ++i) {
    fake_->FailRestores(kRefused);
    Result<Lease> lease = placer_->Place(Id("a"));
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(lease->placement(), Placement::kCold);
    placer_->Finish(lease.value(), std::nullopt, 0, TurnEnd::Unchanged());
    EXPECT_EQ(store_->HasMemory(Id("a")), i < Placer::kMaxRefusals) << "refusal " << i;
    Turn("b", 50);
  }
  EXPECT_EQ(store_->quarantined(), 1);
}

TEST_F(PlacerTest, RefusalsOfAFileTheAgentHasSinceReplacedDoNotAddUp) {
  Make(1);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Turn("b", 50);
  for (int i = 0; i < Placer::kMaxRefusals + 1; ++i) {
    fake_->FailRestores(kRefused);
    EXPECT_EQ(Turn("a", 100 + i), Placement::kCold);  // then saved anew on eviction
    Turn("b", 50);
  }
  EXPECT_TRUE(store_->HasMemory(Id("a")));
  EXPECT_EQ(store_->quarantined(), 0);
}

TEST_F(PlacerTest, ARequestLlamaServerRefusedLeavesTheSlotAsItWas) {
  Make(2);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Result<Lease> lease = placer_->Place(Id("a"));
  ASSERT_TRUE(lease.ok());
  placer_->Finish(lease.value(), std::nullopt, 0, TurnEnd::Unchanged());
  const SlotView v = pool_->View(SlotOf("a"));
  EXPECT_FALSE(v.dirty) << "nothing to save";
  EXPECT_EQ(v.tokens, 100);
  EXPECT_EQ(v.prompt_key, kKey);

  Result<Lease> fresh = placer_->Place(Id("new"));  // erased, then refused
  ASSERT_TRUE(fresh.ok());
  placer_->Finish(fresh.value(), std::nullopt, 0, TurnEnd::Unchanged());
  EXPECT_FALSE(pool_->View(SlotOf("new")).dirty);
  EXPECT_EQ(placer_->SaveAllDirty(), 0);
  EXPECT_EQ(metrics_.resets, 0);
  EXPECT_EQ(metrics_.save_failures, 0);
}

TEST_F(PlacerTest, AnEmptySlotOfUnknownSizeKeepsTheOlderFileAndResetsNothing) {
  Make(2);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Turn("b", 80);  // dirty, in slot 1
  // A request of a cut short: its KV changed by an unknown amount; here to nothing.
  Result<Lease> lease = placer_->Place(Id("a"));
  ASSERT_TRUE(lease.ok());
  fake_->Fill(lease->slot(), 0);
  placer_->Finish(lease.value(), std::nullopt, 0, TurnEnd{});
  EXPECT_FALSE(Save("a"));
  EXPECT_EQ(SavedTokens("a"), 100) << "never replaced by an empty one";
  EXPECT_EQ(metrics_.resets, 0) << "an unknown count is no evidence";
  EXPECT_FALSE(pool_->SlotOf(Id("a"))) << "its file is its memory now";
  EXPECT_TRUE(pool_->View(SlotId{1}).dirty) << "b is untouched";
  EXPECT_EQ(Turn("a", 110), Placement::kRestored);
}

TEST_F(PlacerTest, AnEmptySlotOfKnownSizeSavesTheOtherDirtyAgentsThenResets) {
  Make(2);
  Turn("a", 100);  // slot 0
  Turn("b", 80);   // slot 1, dirty
  ASSERT_TRUE(Save("a"));
  Turn("a", 120);             // dirty again, 120 tokens known
  fake_->Fill(SlotId{0}, 0);  // llama-server lost slot 0 only
  EXPECT_FALSE(Save("a"));
  EXPECT_EQ(metrics_.resets, 1);
  EXPECT_EQ(SavedTokens("a"), 100) << "the older file stays";
  EXPECT_EQ(SavedTokens("b"), 80) << "saved before the slots were forgotten";
  EXPECT_FALSE(pool_->SlotOf(Id("b")));
  EXPECT_EQ(Turn("b", 90), Placement::kRestored);
}

TEST_F(PlacerTest, AResidentRequestOfAnotherPromptThatReusesNothingResetsNothing) {
  Make(2);
  Turn("a", 100);
  Turn("b", 80);
  // A token-array prompt that starts differently: llama-server reuses nothing.
  EXPECT_EQ(Turn("a", 30, kOtherKey, 0), Placement::kResident);
  EXPECT_EQ(metrics_.resets, 0);
  EXPECT_TRUE(pool_->SlotOf(Id("b"))) << "b is still resident";
  EXPECT_EQ(placer_->SaveAllDirty(), 0) << "and both still save";
  EXPECT_EQ(SavedTokens("a"), 30);
  EXPECT_EQ(SavedTokens("b"), 80);
}

TEST_F(PlacerTest, AResidentRequestOfTheSamePromptThatReusesNothingSavesTheOthersThenResets) {
  Make(2);
  Turn("a", 100);
  Turn("b", 80);              // dirty
  fake_->Fill(SlotId{0}, 0);  // a's KV is gone
  EXPECT_EQ(Turn("a", 110, kKey, 0), Placement::kResident);
  EXPECT_EQ(metrics_.resets, 1);
  EXPECT_EQ(SavedTokens("b"), 80) << "saved before its slot was forgotten";
  EXPECT_FALSE(pool_->SlotOf(Id("b")));
  EXPECT_TRUE(pool_->SlotOf(Id("a"))) << "a's KV was just computed: kept";
  EXPECT_EQ(Turn("a", 120), Placement::kResident);
}

TEST_F(PlacerTest, ARestoreThatReusesNothingIsQuarantinedOnlyForTheSamePrompt) {
  Make(1);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Turn("b", 50);
  EXPECT_EQ(Turn("a", 40, kOtherKey, 0), Placement::kRestored);
  EXPECT_TRUE(store_->HasMemory(Id("a"))) << "another prompt may reuse nothing";
  ASSERT_TRUE(Save("a"));
  Turn("b", 50);
  EXPECT_EQ(Turn("a", 60, kOtherKey, 0), Placement::kRestored);
  EXPECT_FALSE(store_->HasMemory(Id("a"))) << "the same prompt must have reused some";
  EXPECT_EQ(store_->quarantined(), 1);
}

TEST_F(PlacerTest, AWarmedRestoreIsJudgedAsARestoreByTheRequestThatFirstUsesIt) {
  Make(1);
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Turn("b", 50);
  Result<Lease> warm = placer_->Place(Id("a"));  // the admin API's warm
  ASSERT_TRUE(warm.ok());
  EXPECT_EQ(warm->placement(), Placement::kRestored);
  warm->Release(TurnEnd::Unchanged());
  fake_->Fill(SlotId{0}, 0);  // a hollow restore
  EXPECT_EQ(Turn("a", 110, kKey, 0), Placement::kResident);
  EXPECT_EQ(metrics_.resets, 0) << "not taken for llama-server losing every slot";
  EXPECT_EQ(store_->quarantined(), 1) << "but for the untrusted restore it was";
}

TEST_F(PlacerTest, ForARecurrentModelReusingNothingIsNoEvidenceAtAll) {
  Make(2, {}, ReuseChecks{false, false});
  Turn("a", 100);
  ASSERT_TRUE(Save("a"));
  Turn("b", 50);
  Turn("c", 50);  // a is out
  // A prompt that diverges after its start: the state cannot be cut back.
  EXPECT_EQ(Turn("a", 60, kKey, 0), Placement::kRestored);
  EXPECT_TRUE(store_->HasMemory(Id("a")));
  EXPECT_EQ(Turn("a", 70, kKey, 0), Placement::kResident);
  EXPECT_EQ(metrics_.resets, 0);
  EXPECT_EQ(store_->quarantined(), 0);
}

TEST_F(PlacerTest, AForkChecksTheParentsFileAndLeavesTheChildEmptyIfItIsBad) {
  Make(2);
  Turn("p", 100);
  ASSERT_TRUE(Save("p"));
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().extension() == ".kv") std::ofstream(e.path()) << "tokens=999";
  }
  Status s = memory_->Fork(Id("p"), Id("c"));
  EXPECT_EQ(s.code(), ErrorCode::kNotFound) << s.message();
  EXPECT_FALSE(store_->HasMemory(Id("c")));
  EXPECT_EQ(store_->quarantined(), 1);
}

TEST_F(PlacerTest, AForkSavesADirtyParentFirstAndCopiesItsLatestMemory) {
  Make(2);
  Turn("p", 100);
  ASSERT_TRUE(Save("p"));
  Turn("p", 150);  // dirty
  ASSERT_TRUE(memory_->Fork(Id("p"), Id("c")).ok());
  EXPECT_EQ(SavedTokens("c"), 150);
  EXPECT_FALSE(pool_->View(SlotOf("p")).dirty);
  EXPECT_EQ(Turn("p", 160), Placement::kResident) << "the parent was only held";
}

TEST_F(PlacerTest, AForkTheBudgetCannotHoldIsRefused) {
  StoreOptions small;
  small.budget_bytes = 15;  // one file of 10 bytes fits, two do not
  small.min_free_bytes = 0;
  Make(2, small);
  Turn("p", 100);  // saved as "tokens=100": 10 bytes
  ASSERT_TRUE(Save("p"));
  Status s = memory_->Fork(Id("p"), Id("c"));
  EXPECT_EQ(s.code(), ErrorCode::kConflict) << s.message();
  EXPECT_FALSE(store_->HasMemory(Id("c")));
  EXPECT_TRUE(store_->HasMemory(Id("p")));
}

TEST_F(PlacerTest, ShutdownSavesLeastRecentlyUsedFirstAndStopsAtItsDeadline) {
  Make(3);
  Turn("a", 100);
  Turn("b", 100);
  Turn("c", 100);
  Turn("a", 110);  // now the most recent
  EXPECT_EQ(placer_->SaveAllDirty(std::chrono::steady_clock::now()), 3) << "past the deadline";
  EXPECT_TRUE(fake_->calls().back().rfind("save", 0) != 0);
  EXPECT_EQ(placer_->SaveAllDirty(), 0);
  std::vector<std::string> saves;
  for (const std::string& c : fake_->calls()) {
    if (c.rfind("save", 0) == 0) saves.push_back(c);
  }
  EXPECT_EQ(saves, (std::vector<std::string>{"save 1", "save 2", "save 0"}));
}

// Turn-end saves wait while a request waits for its first token, at most
// the deferral bound; a drain does not wait.
class SaveDeferralTest : public PlacerTest {
 protected:
  void MakeTurnEnd(std::chrono::milliseconds bound,
                   std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
    Make(2);
    memory_.reset();
    placer_.reset();
    placer_ = std::make_unique<Placer>(*pool_, *fake_, *store_, SavePolicy::kTurnEnd, metrics_,
                                       ReuseChecks{}, SaveDeferral{grace, bound});
    memory_ = std::make_unique<MemoryOps>(*pool_, *fake_, *store_, *placer_, metrics_);
  }
  static constexpr std::chrono::seconds kPatience{10};
};

TEST_F(SaveDeferralTest, ASaveWaitsForTheBoundWhileARequestHasNoFirstToken) {
  MakeTurnEnd(std::chrono::milliseconds(150));
  Placer::PrefillTicket waiting = placer_->Prefilling();
  const auto before = std::chrono::steady_clock::now();
  Turn("a", 100);
  const auto saved = fake_->WaitFor("save 0", kPatience);
  ASSERT_TRUE(saved) << "the bound ends the wait";
  EXPECT_GE(*saved - before, std::chrono::milliseconds(150));
}

TEST_F(SaveDeferralTest, ASaveRunsOnceTheWaitingRequestHasItsFirstToken) {
  MakeTurnEnd(std::chrono::hours(1));
  Placer::PrefillTicket waiting = placer_->Prefilling();
  Placer::PrefillTicket moved = std::move(waiting);  // one ticket still, not two
  Turn("a", 100);
  Turn("b", 80);
  for (const std::string& call : fake_->calls()) EXPECT_NE(call.rfind("save", 0), 0u) << call;
  moved.End();
  EXPECT_TRUE(fake_->WaitFor("save 0", kPatience));
  EXPECT_TRUE(fake_->WaitFor("save 1", kPatience));
  placer_->DrainSaves();
  EXPECT_EQ(SavedTokens("a"), 100);
  EXPECT_EQ(SavedTokens("b"), 80);
}

TEST_F(SaveDeferralTest, ARequestArrivingWithinTheGraceGoesBeforeTheSave) {
  MakeTurnEnd(std::chrono::hours(1), std::chrono::hours(1));
  Turn("a", 100);
  for (const std::string& call : fake_->calls()) EXPECT_NE(call.rfind("save", 0), 0u) << call;
  Placer::PrefillTicket next = placer_->Prefilling();
  Turn("b", 80);
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"erase 0", "erase 1"}));
  next.End();
  EXPECT_TRUE(fake_->WaitFor("save 0", kPatience));
  placer_->DrainSaves();  // b's save is still in its grace: no request came after it
  EXPECT_EQ(SavedTokens("b"), 80);
}

TEST_F(SaveDeferralTest, DrainingDoesNotWaitForPrefills) {
  MakeTurnEnd(std::chrono::hours(1));
  Placer::PrefillTicket waiting = placer_->Prefilling();
  Turn("a", 100);
  placer_->DrainSaves();
  EXPECT_EQ(SavedTokens("a"), 100);
}

TEST_F(PlacerTest, TwoForksCrossingEachOtherBothComplete) {
  Make(2);
  Turn("a", 100);
  Turn("b", 80);
  ASSERT_EQ(placer_->SaveAllDirty(), 0);
  for (int round = 0; round < 20; ++round) {
    auto ab = std::async(std::launch::async, [&] { return memory_->Fork(Id("a"), Id("b")); });
    auto ba = std::async(std::launch::async, [&] { return memory_->Fork(Id("b"), Id("a")); });
    const Status first = ab.get(), second = ba.get();
    ASSERT_TRUE(first.ok()) << "round " << round << ": " << first.message();
    ASSERT_TRUE(second.ok()) << "round " << round << ": " << second.message();
  }
  EXPECT_TRUE(store_->HasMemory(Id("a")));
  EXPECT_TRUE(store_->HasMemory(Id("b")));
}

// What turns say of agents' returns: restores ahead, delayed saves.
class ReturnAwareTest : public PlacerTest {
 protected:
  // Turn-end saves on the pool's real clock; no prefetch thread (tests
  // call PrefetchOnce).
  void MakeAware(int slots, std::chrono::milliseconds save_delay,
                 SavePolicy policy = SavePolicy::kTurnEnd) {
    Make(slots);
    memory_.reset();
    placer_.reset();
    Store* store = store_.get();
    pool_ = std::make_unique<SlotPool>(
        slots, QueueLimits{8, std::chrono::milliseconds(5000)},
        [store](const AgentId& a) { return store->HasMemory(a); }, 1, &Clock::now,
        Eviction::kPredicted);
    placer_ = std::make_unique<Placer>(
        *pool_, *fake_, *store_, policy, metrics_, ReuseChecks{},
        SaveDeferral{std::chrono::milliseconds(0), std::chrono::milliseconds(0)},
        ReturnAware{false, save_delay});
    memory_ = std::make_unique<MemoryOps>(*pool_, *fake_, *store_, *placer_, metrics_);
  }
  // One turn of `agent` that ends as `expect` says, back in `back_in`.
  Placement TurnExpecting(const char* agent, long long tokens, Expect expect,
                          std::chrono::milliseconds back_in = std::chrono::milliseconds(0)) {
    Result<Lease> lease = placer_->Place(Id(agent));
    EXPECT_TRUE(lease.ok()) << lease.status().message();
    if (!lease.ok()) return Placement::kStateless;
    const Placement placed = lease->placement();
    const long long reused = fake_->TokensIn(lease->slot());
    fake_->Fill(lease->slot(), tokens);
    TurnEnd end = TurnEnd::Ran(tokens, kKey);
    end.expect = expect;
    end.back_in = back_in;
    placer_->Finish(lease.value(), reused, tokens - reused, end);
    return placed;
  }
  std::vector<std::string> Saves() {
    std::vector<std::string> out;
    for (const std::string& c : fake_->calls()) {
      if (c.rfind("save", 0) == 0) out.push_back(c);
    }
    return out;
  }
  static constexpr std::chrono::seconds kPatience{10};
};

TEST_F(ReturnAwareTest, ATurnBeforeAToolCallIsSavedOnlyOnceItsDelayIsOver) {
  MakeAware(2, std::chrono::milliseconds(300));
  const auto before = std::chrono::steady_clock::now();
  TurnExpecting("tool", 100, Expect::kReturning, std::chrono::milliseconds(100));
  TurnExpecting("person", 80, Expect::kPerson);
  ASSERT_TRUE(fake_->WaitFor("save 1", kPatience)) << "a person answers next: saved at once";
  const auto saved = fake_->WaitFor("save 0", kPatience);
  ASSERT_TRUE(saved);
  EXPECT_GE(*saved - before, std::chrono::milliseconds(300));
  EXPECT_EQ(Saves(), (std::vector<std::string>{"save 1", "save 0"}));
}

TEST_F(ReturnAwareTest, ARunOfToolCallsIsWrittenOnceWhenItEnds) {
  MakeAware(1, std::chrono::hours(1));
  TurnExpecting("a", 100, Expect::kReturning, std::chrono::seconds(5));
  TurnExpecting("a", 150, Expect::kReturning, std::chrono::seconds(5));
  TurnExpecting("a", 200, Expect::kReturning, std::chrono::seconds(5));
  EXPECT_EQ(SavedTokens("a"), std::nullopt);
  TurnExpecting("a", 260, Expect::kPerson);
  ASSERT_TRUE(fake_->WaitFor("save 0", kPatience));
  placer_->DrainSaves();
  EXPECT_EQ(Saves(), (std::vector<std::string>{"save 0"}));
  EXPECT_EQ(SavedTokens("a"), 260);
  EXPECT_EQ(metrics_.saved_bytes.load(), 10);  // FakeSlots writes 10 bytes a save
}

TEST_F(ReturnAwareTest, AToolCallLongerThanTheDelayOrAStopOrAnEvictionStillSaves) {
  MakeAware(1, std::chrono::hours(1));
  TurnExpecting("slow", 100, Expect::kReturning, std::chrono::hours(2));
  ASSERT_TRUE(fake_->WaitFor("save 0", kPatience)) << "back after the delay: saved at its end";
  TurnExpecting("a", 50, Expect::kReturning, std::chrono::seconds(5));
  TurnExpecting("b", 70, Expect::kUnknown);  // evicts a: saved on b's way in
  EXPECT_EQ(SavedTokens("a"), 50);
  placer_->DrainSaves();  // a graceful stop waits for no delay
  EXPECT_EQ(SavedTokens("b"), 70);
}

TEST_F(ReturnAwareTest, AnAgentExpectedBackIsRestoredAheadAndItsRequestFindsItResident) {
  MakeAware(1, std::chrono::milliseconds(0), SavePolicy::kEviction);
  TurnExpecting("a", 100, Expect::kReturning, std::chrono::seconds(30));
  TurnExpecting("b", 80, Expect::kPerson);  // evicts a, saving it
  ASSERT_EQ(SavedTokens("a"), 100);
  EXPECT_FALSE(placer_->PrefetchOnce()) << "b's person may answer before a is back";
  EXPECT_EQ(TurnExpecting("b", 90, Expect::kDone), Placement::kResident);
  {
    Placer::PrefillTicket prefill = placer_->Prefilling();
    EXPECT_FALSE(placer_->PrefetchOnce()) << "a first token comes first";
  }
  ASSERT_TRUE(placer_->PrefetchOnce());
  EXPECT_EQ(fake_->calls().back(), "restore 0");
  EXPECT_EQ(SavedTokens("b"), 90) << "b's turn was saved before its slot was taken";
  EXPECT_EQ(fake_->TokensIn(SlotId{0}), 100);
  EXPECT_FALSE(placer_->PrefetchOnce()) << "nobody else is away";
  const long long restores = metrics_.restores;
  EXPECT_EQ(TurnExpecting("a", 120, Expect::kPerson), Placement::kResident);
  EXPECT_EQ(metrics_.restores.load(), restores) << "no restore on the request's path";
  EXPECT_EQ(metrics_.prefetches.load(), 1);
  EXPECT_EQ(metrics_.prefetch_hits.load(), 1);
  EXPECT_EQ(metrics_.restored_bytes.load(), 10);
}

TEST_F(ReturnAwareTest, ARestoreAheadThatFailsLeavesTheFileAndTheAgentAsTheyWere) {
  MakeAware(1, std::chrono::milliseconds(0), SavePolicy::kEviction);
  TurnExpecting("a", 100, Expect::kReturning, std::chrono::seconds(30));
  TurnExpecting("b", 80, Expect::kDone);
  for (int i = 0; i < Placer::kMaxRefusals; ++i) fake_->FailRestores(kRefused);
  ASSERT_TRUE(placer_->PrefetchOnce());
  EXPECT_EQ(metrics_.prefetch_failures.load(), 1);
  EXPECT_EQ(metrics_.fallbacks.load(), 0) << "no request fell back";
  EXPECT_TRUE(store_->HasMemory(Id("a")));
  EXPECT_FALSE(pool_->SlotOf(Id("a")));
  for (int i = 1; i < Placer::kMaxRefusals; ++i) {  // requests llama-server then refused
    for (const char* agent : {"a", "b"}) {
      Result<Lease> lease = placer_->Place(Id(agent));
      ASSERT_TRUE(lease.ok());
      placer_->Finish(lease.value(), std::nullopt, 0, TurnEnd::Unchanged());
    }
  }
  EXPECT_EQ(metrics_.fallbacks.load(), Placer::kMaxRefusals - 1);
  EXPECT_TRUE(store_->HasMemory(Id("a"))) << "the failure ahead is not one of its refusals";
}

}  // namespace
}  // namespace agentkv

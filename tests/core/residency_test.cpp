#include "core/residency.h"

#include <gtest/gtest.h>

#include <set>

namespace agentkv {
namespace {

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

// Residency with a stand-in for the store's index: a save that succeeds
// gives the evicted agent a file.
class ResidencyTest : public ::testing::Test {
 protected:
  Residency Make(int slots, int max_pins = 0, Eviction eviction = Eviction::kLru) {
    return Residency(
        slots, [this](const AgentId& a) { return files_.count(a) > 0; }, max_pins, eviction);
  }
  TimePoint At(int seconds) { return TimePoint{} + std::chrono::seconds(seconds); }

  // Runs a plan as if every upstream step succeeded and the request finished.
  Placement Serve(Residency& r, const Tenant& t, int at, long long tokens = 100) {
    std::optional<Plan> plan = r.TryAcquire(t, At(at));
    EXPECT_TRUE(plan.has_value());
    if (plan->save_evicted) files_.insert(*plan->evicted);
    Result<Placement> placed = r.CompleteSwitch(*plan, {true, true, true, 50});
    EXPECT_TRUE(placed.ok());
    r.Release(plan->slot, At(at), TurnEnd::Ran(tokens));
    return placed.value();
  }
  // As Serve, the turn saying `expect` of the agent's return (back in
  // `back_in_s` seconds, for kReturning). Returns the agent it evicted.
  std::optional<AgentId> ServeExpecting(Residency& r, const Tenant& t, int at, Expect expect,
                                        int back_in_s, long long tokens = 100) {
    std::optional<Plan> plan = r.TryAcquire(t, At(at));
    EXPECT_TRUE(plan.has_value());
    if (!plan) return std::nullopt;
    if (plan->save_evicted) files_.insert(*plan->evicted);
    Result<Placement> placed = r.CompleteSwitch(*plan, {true, true, true, 50});
    EXPECT_TRUE(placed.ok());
    TurnEnd end = TurnEnd::Ran(tokens);
    end.expect = expect;
    end.back_in = std::chrono::seconds(back_in_s);
    r.Release(plan->slot, At(at), end);
    return plan->evicted;
  }

  std::set<AgentId> files_;
};

TEST_F(ResidencyTest, ErasesAFreshSlotBeforeANewAgentUsesIt) {
  Residency r = Make(2);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->slot.value, 0);
  EXPECT_TRUE(plan->erase);
  EXPECT_FALSE(plan->restore);
  EXPECT_FALSE(plan->evicted);
}

TEST_F(ResidencyTest, AReturningResidentAgentNeedsNoUpstreamStep) {
  Residency r = Make(2);
  EXPECT_EQ(Serve(r, Id("a"), 1), Placement::kCold);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->resident);
  EXPECT_FALSE(plan->save_evicted || plan->restore || plan->erase);
  EXPECT_EQ(r.CompleteSwitch(*plan, {}).value(), Placement::kResident);
}

TEST_F(ResidencyTest, EvictsLeastRecentlyUsedIdleSlotWhenAllAreTaken) {
  Residency r = Make(2);
  Serve(r, Id("a"), 1);      // slot 0
  Serve(r, Id("b"), 2, 77);  // slot 1
  Serve(r, Id("a"), 3);      // a is now the most recent
  std::optional<Plan> plan = r.TryAcquire(Id("c"));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->slot.value, 1);
  ASSERT_TRUE(plan->evicted);
  EXPECT_EQ(*plan->evicted, Id("b"));
  EXPECT_TRUE(plan->save_evicted);
  EXPECT_EQ(plan->evicted_tokens, 77);
  EXPECT_TRUE(plan->erase) << "c must not see b's KV";
  EXPECT_FALSE(plan->restore);
}

// Agents in a tool call are kept over older ones waiting for a person; one
// that is done goes first; among those in a tool call, the one expected
// back latest goes, and one long overdue is no longer protected.
TEST_F(ResidencyTest, PredictedEvictionKeepsTheAgentsAboutToReturn) {
  Residency r = Make(3, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("tool"), 1, Expect::kReturning, 10);  // the least recently used
  ServeExpecting(r, Id("person"), 2, Expect::kPerson, 0);
  ServeExpecting(r, Id("quiet"), 3, Expect::kUnknown, 0);
  EXPECT_EQ(ServeExpecting(r, Id("d"), 4, Expect::kPerson, 0), Id("person"))
      << "waiting for a person, and older than quiet: tool stays though older still";
  EXPECT_EQ(ServeExpecting(r, Id("e"), 5, Expect::kDone, 0), Id("quiet"));
  EXPECT_EQ(ServeExpecting(r, Id("f"), 6, Expect::kReturning, 5), Id("e"))
      << "done goes first, though the most recently used";
}

TEST_F(ResidencyTest, PredictedEvictionTakesADoneAgentFirstAndTheLatestReturnAmongTools) {
  Residency r = Make(3, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("soon"), 1, Expect::kReturning, 5);     // back at 6
  ServeExpecting(r, Id("later"), 2, Expect::kReturning, 100);  // back at 102
  ServeExpecting(r, Id("done"), 3, Expect::kDone, 0);
  EXPECT_EQ(ServeExpecting(r, Id("x"), 4, Expect::kReturning, 50), Id("done"));
  EXPECT_EQ(ServeExpecting(r, Id("y"), 5, Expect::kReturning, 50), Id("later"))
      << "expected back at 102, after x (54) and soon (6)";
  // soon was expected at 6: at 67 it is overdue by more than a minute and
  // counts as an agent that said nothing; x (54 + 60 = 114) and y are not.
  EXPECT_EQ(ServeExpecting(r, Id("z"), 67, Expect::kReturning, 50), Id("soon"));
}

TEST_F(ResidencyTest, LruEvictionIgnoresWhatTurnsSay) {
  Residency r = Make(2, 0, Eviction::kLru);
  ServeExpecting(r, Id("tool"), 1, Expect::kReturning, 10);
  ServeExpecting(r, Id("done"), 2, Expect::kDone, 0);
  EXPECT_EQ(ServeExpecting(r, Id("c"), 3, Expect::kUnknown, 0), Id("tool"));
}

TEST_F(ResidencyTest, APinStillWinsOverPredictedEviction) {
  Residency r = Make(2, 1, Eviction::kPredicted);
  ServeExpecting(r, Id("done"), 1, Expect::kDone, 0);
  ServeExpecting(r, Id("tool"), 2, Expect::kReturning, 10);
  ASSERT_TRUE(r.Pin(Id("done")).ok());
  EXPECT_EQ(ServeExpecting(r, Id("c"), 3, Expect::kUnknown, 0), Id("tool"));
}

TEST_F(ResidencyTest, RestoresAnEvictedAgentFromItsFileWhenItReturns) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1);
  EXPECT_EQ(Serve(r, Id("b"), 2), Placement::kCold);  // evicts and saves a
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->restore);
  EXPECT_FALSE(plan->erase) << "a restore replaces the slot's KV";
  EXPECT_EQ(*plan->evicted, Id("b"));
  EXPECT_EQ(r.CompleteSwitch(*plan, {true, true, false, 42}).value(), Placement::kRestored);
  EXPECT_EQ(r.View(plan->slot).tokens, 42);
}

TEST_F(ResidencyTest, SerializesRequestsOfOneAgent) {
  Residency r = Make(2);
  std::optional<Plan> first = r.TryAcquire(Id("a"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "while switching";
  ASSERT_TRUE(r.CompleteSwitch(*first, {true, true, true}).ok());
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "while busy";
  EXPECT_TRUE(r.TryAcquire(Id("b"))) << "other agents run in parallel";
  r.Release(first->slot, At(1), TurnEnd::Ran(10));
  EXPECT_TRUE(r.TryAcquire(Id("a")));
}

TEST_F(ResidencyTest, AnAgentBeingSavedOutWaitsUntilTheSaveEnds) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1);
  std::optional<Plan> b = r.TryAcquire(Id("b"));
  ASSERT_TRUE(b);
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "its file is being written";
  files_.insert(Id("a"));
  ASSERT_TRUE(r.CompleteSwitch(*b, {true, false, true}).ok());
  r.Release(b->slot, At(2), TurnEnd::Ran(10));
  std::optional<Plan> a = r.TryAcquire(Id("a"));
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->restore);
}

TEST_F(ResidencyTest, WaitsWhenEverySlotIsBusy) {
  Residency r = Make(2);
  ASSERT_TRUE(r.TryAcquire(Id("a")));
  ASSERT_TRUE(r.TryAcquire(Id("b")));
  EXPECT_FALSE(r.TryAcquire(Id("c")));
  EXPECT_FALSE(r.TryAcquire(Tenant()));
}

TEST_F(ResidencyTest, AStatelessRequestLeavesNoKVForTheNextTenant) {
  Residency r = Make(1);
  EXPECT_EQ(Serve(r, Tenant(), 1), Placement::kStateless);
  EXPECT_EQ(r.View(SlotId{0}).phase, SlotPhase::kFree);
  EXPECT_TRUE(r.View(SlotId{0}).stale);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->erase);
  EXPECT_FALSE(plan->evicted);
}

TEST_F(ResidencyTest, PrefersAnEmptyFreeSlotToAStaleOne) {
  Residency r = Make(2);
  std::optional<Plan> a = r.TryAcquire(Id("a"));  // slot 0, erased: empty
  ASSERT_TRUE(r.CompleteSwitch(*a, {true, true, true}).ok());
  r.Release(a->slot, At(1), TurnEnd::Ran(10));
  std::optional<Plan> s = r.TryAcquire(Tenant());  // slot 1, stale
  EXPECT_EQ(s->slot.value, 1);
  ASSERT_TRUE(r.CompleteSwitch(*s, {true, true, true}).ok());
  r.Release(s->slot, At(2), TurnEnd::Ran(10));  // slot 1 free and stale again
  std::optional<Plan> b = r.TryAcquire(Id("b"));
  EXPECT_EQ(b->slot.value, 1) << "a free slot before evicting a";
  EXPECT_FALSE(b->evicted);
  EXPECT_TRUE(b->erase);
}

TEST_F(ResidencyTest, AFailedRestoreFallsBackToAnErasedSlot) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1);
  Serve(r, Id("b"), 2);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(plan->restore);
  Result<Placement> placed = r.CompleteSwitch(*plan, {true, false, true});
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(placed.value(), Placement::kCold);
  EXPECT_EQ(r.View(plan->slot).tokens, 0);
}

TEST_F(ResidencyTest, ASlotThatCouldNotBeErasedIsNeverHandedOut) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1);
  std::optional<Plan> plan = r.TryAcquire(Id("b"));
  ASSERT_TRUE(plan->erase);
  Result<Placement> placed = r.CompleteSwitch(*plan, {true, false, false});
  EXPECT_FALSE(placed.ok());
  EXPECT_EQ(placed.status().code(), ErrorCode::kUpstreamError);
  EXPECT_EQ(r.View(SlotId{0}).phase, SlotPhase::kFree);
  EXPECT_TRUE(r.View(SlotId{0}).stale);
  EXPECT_FALSE(r.SlotOf(Id("a"))) << "a's KV may be gone: not resident";
  std::optional<Plan> retry = r.TryAcquire(Id("b"));
  ASSERT_TRUE(retry);
  EXPECT_TRUE(retry->erase);
}

TEST_F(ResidencyTest, ARestoredAgentIsCleanUntilItsNextRequestEnds) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1);
  Serve(r, Id("b"), 2);
  std::optional<Plan> plan = r.TryAcquire(Id("a"));
  ASSERT_TRUE(r.CompleteSwitch(*plan, {true, true, false}).ok());
  EXPECT_FALSE(r.View(plan->slot).dirty);
  r.Release(plan->slot, At(3), TurnEnd::Ran(10));
  EXPECT_TRUE(r.View(plan->slot).dirty);
}

TEST_F(ResidencyTest, ATurnEndSaveMakesTheSlotCleanSoEvictionSkipsTheSave) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1, 300);
  std::optional<SaveJob> job = r.TryBeginSave(SlotId{0});
  ASSERT_TRUE(job);
  EXPECT_EQ(job->agent, Id("a"));
  EXPECT_EQ(job->tokens, 300);
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "its file is being written";
  EXPECT_FALSE(r.TryAcquire(Id("b"))) << "the saving slot is not evictable";
  EXPECT_FALSE(r.TryBeginSave(SlotId{0})) << "one save at a time";
  r.EndSave(SlotId{0}, SaveResult::kSaved);
  EXPECT_FALSE(r.TryBeginSave(SlotId{0})) << "clean: nothing to save";
  std::optional<Plan> b = r.TryAcquire(Id("b"));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b->evicted, Id("a"));
  EXPECT_FALSE(b->save_evicted);
}

// A turn that computed at most the one prompt token llama-server always
// recomputes, and generated at most one, added nothing the file lacks.
TurnEnd AddedNothing(long long tokens) {
  TurnEnd end = TurnEnd::Ran(tokens);
  end.added_nothing = true;
  return end;
}

TEST_F(ResidencyTest, ATurnThatAddsNothingToARestoredOrSavedKvLeavesItClean) {
  Residency r = Make(1);
  files_.insert(Id("a"));
  std::optional<Plan> restored = r.TryAcquire(Id("a"));
  ASSERT_TRUE(restored && restored->restore);
  ASSERT_EQ(r.CompleteSwitch(*restored, {false, true, false, 300}).value(), Placement::kRestored);
  r.Release(SlotId{0}, At(1), AddedNothing(301));
  EXPECT_FALSE(r.View(SlotId{0}).dirty) << "the file already holds it";
  EXPECT_FALSE(r.TryBeginSave(SlotId{0}));

  std::optional<Plan> again = r.TryAcquire(Id("a"));  // resident, still the file's KV
  ASSERT_TRUE(r.CompleteSwitch(*again, {}).ok());
  r.Release(SlotId{0}, At(2), TurnEnd::Ran(340));  // a turn with new tokens
  EXPECT_TRUE(r.View(SlotId{0}).dirty);
  again = r.TryAcquire(Id("a"));
  ASSERT_TRUE(r.CompleteSwitch(*again, {}).ok());
  r.Release(SlotId{0}, At(3), AddedNothing(341));
  EXPECT_TRUE(r.View(SlotId{0}).dirty) << "its new tokens are still unsaved";

  ASSERT_TRUE(r.TryBeginSave(SlotId{0}));
  r.EndSave(SlotId{0}, SaveResult::kSaved);
  again = r.TryAcquire(Id("a"));
  ASSERT_TRUE(r.CompleteSwitch(*again, {}).ok());
  r.Release(SlotId{0}, At(4), AddedNothing(341));
  EXPECT_FALSE(r.View(SlotId{0}).dirty) << "saved since";
  std::optional<Plan> b = r.TryAcquire(Id("b"));
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->save_evicted);
}

TEST_F(ResidencyTest, ATurnThatAddsNothingToAColdOrRequarantinedSlotStillNeedsASave) {
  Residency r = Make(1);
  std::optional<Plan> cold = r.TryAcquire(Id("a"));  // no file: erased, then prefilled
  ASSERT_TRUE(r.CompleteSwitch(*cold, {false, false, true}).ok());
  r.Release(SlotId{0}, At(1), AddedNothing(1));
  EXPECT_TRUE(r.View(SlotId{0}).dirty) << "no file holds even that token";

  ASSERT_TRUE(r.TryBeginSave(SlotId{0}));
  r.EndSave(SlotId{0}, SaveResult::kSaved);
  ASSERT_TRUE(r.MarkDirty(Id("a")));  // its file was quarantined
  std::optional<Plan> again = r.TryAcquire(Id("a"));
  ASSERT_TRUE(r.CompleteSwitch(*again, {}).ok());
  r.Release(SlotId{0}, At(2), AddedNothing(1));
  EXPECT_TRUE(r.View(SlotId{0}).dirty) << "the file it matched is gone";
}

TEST_F(ResidencyTest, AFailedTurnEndSaveLeavesTheSlotDirty) {
  Residency r = Make(1);
  Serve(r, Id("a"), 1);
  ASSERT_TRUE(r.TryBeginSave(SlotId{0}));
  r.EndSave(SlotId{0}, SaveResult::kFailed);
  EXPECT_EQ(r.DirtySlots().size(), 1u);
  EXPECT_TRUE(r.TryAcquire(Id("b"))->save_evicted);
}

TEST_F(ResidencyTest, AfterARestartNoSlotIsTrustedToHoldAnAgentsKV) {
  Residency r = Make(2);
  Serve(r, Id("a"), 1);
  std::optional<Plan> busy = r.TryAcquire(Id("b"));
  ASSERT_TRUE(r.CompleteSwitch(*busy, {true, true, true}).ok());
  r.ResetAll();
  EXPECT_FALSE(r.SlotOf(Id("a")));
  EXPECT_TRUE(r.View(SlotId{0}).stale);
  EXPECT_TRUE(r.View(busy->slot).lost);
  r.Release(busy->slot, At(2), TurnEnd::Ran(10));
  EXPECT_FALSE(r.SlotOf(Id("b"))) << "its KV went with the old llama-server";
  std::optional<Plan> a = r.TryAcquire(Id("a"));
  EXPECT_FALSE(a->resident);
  EXPECT_TRUE(a->erase);
}

TEST_F(ResidencyTest, APinnedAgentIsNeverEvictedAndPinsAreBounded) {
  Residency r = Make(2, 1);
  Serve(r, Id("a"), 1);
  Serve(r, Id("b"), 2);
  ASSERT_TRUE(r.Pin(Id("a")).ok());
  EXPECT_EQ(r.Pin(Id("b")).code(), ErrorCode::kConflict);
  std::optional<Plan> c = r.TryAcquire(Id("c"));
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->evicted, Id("b")) << "a is older but pinned";
  ASSERT_TRUE(r.CompleteSwitch(*c, {true, true, true}).ok());
  EXPECT_FALSE(r.TryAcquire(Id("d"))) << "only a's pinned slot is idle";
  r.Unpin(Id("a"));
  EXPECT_EQ(*r.TryAcquire(Id("d"))->evicted, Id("a"));
}

TEST_F(ResidencyTest, DroppingAnAgentWaitsForItsRequestThenFreesItsSlot) {
  Residency r = Make(1);
  std::optional<Plan> a = r.TryAcquire(Id("a"));
  ASSERT_TRUE(r.CompleteSwitch(*a, {true, true, true}).ok());
  bool wait = false;
  EXPECT_FALSE(r.TryBeginDrop(Id("a"), &wait));
  EXPECT_TRUE(wait);
  r.Release(a->slot, At(1), TurnEnd::Ran(10));
  std::optional<SlotId> slot = r.TryBeginDrop(Id("a"), &wait);
  EXPECT_FALSE(wait);
  ASSERT_TRUE(slot);
  EXPECT_FALSE(r.TryAcquire(Id("a"))) << "held while its memory goes";
  r.EndDrop(Id("a"), slot, true);
  EXPECT_FALSE(r.SlotOf(Id("a")));
  EXPECT_FALSE(r.View(*slot).stale);
  EXPECT_FALSE(r.TryBeginDrop(Id("nobody"), &wait));
  EXPECT_FALSE(wait);
  EXPECT_FALSE(r.TryAcquire(Id("nobody"))) << "held even though not resident";
  r.EndDrop(Id("nobody"), std::nullopt, false);
  EXPECT_TRUE(r.TryAcquire(Id("nobody")));
}

TEST_F(ResidencyTest, AResetWaitsWhileAnIdleSlotHoldsUnsavedKv) {
  Residency r = Make(2);
  Serve(r, Id("a"), 1);  // slot 0, dirty
  Serve(r, Id("b"), 2);  // slot 1, dirty
  EXPECT_FALSE(r.ResetAllIfSaved());
  EXPECT_TRUE(r.View(SlotId{0}).owner) << "nothing forgotten";
  ASSERT_TRUE(r.TryBeginSave(SlotId{0}));
  r.EndSave(SlotId{0}, SaveResult::kSaved);
  EXPECT_FALSE(r.ResetAllIfSaved()) << "b is still unsaved";
  EXPECT_TRUE(r.ResetAllIfSaved(SlotId{1})) << "unless it is the slot to spare";
  EXPECT_FALSE(r.View(SlotId{0}).owner);
  EXPECT_EQ(r.View(SlotId{1}).owner, Id("b"));
}

// Restores ahead of requests (TryBeginPrefetch).
TEST_F(ResidencyTest, AnAgentInAToolCallIsRestoredAheadIntoADoneAgentsSlotNotAPersonsOne) {
  Residency r = Make(2, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 10);  // back at 10
  ServeExpecting(r, Id("b"), 1, Expect::kReturning, 20);  // back at 21
  EXPECT_EQ(ServeExpecting(r, Id("c"), 2, Expect::kPerson, 0), Id("b"));
  EXPECT_EQ(r.NextAway(At(3)), Id("b"));
  EXPECT_EQ(r.NextAway(At(3)), std::nullopt) << "named once";
  EXPECT_EQ(r.TryBeginPrefetch(At(3)), std::nullopt) << "c's person may answer before b is back";

  ServeExpecting(r, Id("c"), 4, Expect::kDone, 0);  // the person answered; c is done
  std::optional<Plan> plan = r.TryBeginPrefetch(At(5));
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->prefetch);
  EXPECT_EQ(plan->tenant, Id("b"));
  EXPECT_EQ(plan->evicted, Id("c")) << "done: the one slot b may take";
  EXPECT_TRUE(plan->restore);
  EXPECT_EQ(r.TryAcquire(Id("b"), At(5)), std::nullopt) << "b waits for the restore under way";
  if (plan->save_evicted) files_.insert(*plan->evicted);
  ASSERT_TRUE(r.CompleteSwitch(*plan, {true, true, false, 70}).ok());
  const SlotView v = r.View(plan->slot);
  EXPECT_EQ(v.phase, SlotPhase::kIdle) << "no request holds it";
  EXPECT_FALSE(v.dirty);
  EXPECT_TRUE(v.prefetched);
  EXPECT_EQ(v.tokens, 70);
  EXPECT_EQ(r.TryBeginPrefetch(At(6)), std::nullopt) << "nobody else is away";

  std::optional<Plan> back = r.TryAcquire(Id("b"), At(7));
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->resident);
  EXPECT_TRUE(back->prefetched);
  EXPECT_FALSE(r.View(back->slot).prefetched) << "counted once";
}

TEST_F(ResidencyTest, AnAgentWhoseFileIsStillBeingWrittenIsRestoredAheadOnceItIs) {
  Residency r = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 10);
  std::optional<Plan> b = r.TryAcquire(Id("b"), At(1));  // evicts a, whose turn is unsaved
  ASSERT_TRUE(b && b->save_evicted);
  EXPECT_EQ(r.TryBeginPrefetch(At(1)), std::nullopt) << "a is being saved out";
  files_.insert(Id("a"));  // the save is done
  ASSERT_TRUE(r.CompleteSwitch(*b, {true, false, true, 0}).ok());
  TurnEnd end = TurnEnd::Ran(50);
  end.expect = Expect::kDone;
  r.Release(b->slot, At(2), end);
  std::optional<Plan> plan = r.TryBeginPrefetch(At(3));
  ASSERT_TRUE(plan) << "a is still expected back";
  EXPECT_EQ(plan->tenant, Id("a"));
}

TEST_F(ResidencyTest, NoAgentIsRestoredAheadOverOneExpectedBackSooner) {
  Residency r = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 10);                     // back at 10
  EXPECT_EQ(ServeExpecting(r, Id("b"), 1, Expect::kReturning, 5), Id("a"));  // back at 6
  EXPECT_EQ(r.TryBeginPrefetch(At(2)), std::nullopt) << "b is back before a";
  EXPECT_EQ(r.TryBeginPrefetch(At(60)), std::nullopt) << "b is late, not yet overdue";
  std::optional<Plan> plan = r.TryBeginPrefetch(At(67));
  ASSERT_TRUE(plan) << "b is overdue by more than a minute: a goes ahead of it";
  EXPECT_EQ(plan->tenant, Id("a"));
  EXPECT_EQ(plan->evicted, Id("b"));
}

TEST_F(ResidencyTest, NoAgentIsRestoredAheadOverOneExpectedBackLaterOrWhoseTurnSaidNothing) {
  Residency r = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 5);                       // back at 5
  EXPECT_EQ(ServeExpecting(r, Id("b"), 1, Expect::kReturning, 30), Id("a"));  // back at 31
  EXPECT_EQ(r.TryBeginPrefetch(At(2)), std::nullopt) << "b is expected later, but expected";
  ServeExpecting(r, Id("b"), 3, Expect::kUnknown, 0);
  EXPECT_EQ(r.TryBeginPrefetch(At(4)), std::nullopt) << "b said nothing: it may be back first";
  ServeExpecting(r, Id("b"), 4, Expect::kDone, 0);
  std::optional<Plan> plan = r.TryBeginPrefetch(At(4));
  ASSERT_TRUE(plan) << "b is done";
  EXPECT_EQ(plan->tenant, Id("a"));
}

TEST_F(ResidencyTest, AnAgentOverdueOrUsedOrDroppedIsNoLongerAway) {
  Residency r = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 10);
  ServeExpecting(r, Id("b"), 1, Expect::kDone, 0);  // evicts a, back at 10
  EXPECT_EQ(r.TryBeginPrefetch(At(71)), std::nullopt) << "a is overdue: not expected any more";

  Residency r2 = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r2, Id("a"), 0, Expect::kReturning, 10);
  ServeExpecting(r2, Id("b"), 1, Expect::kDone, 0);
  bool wait = false;
  r2.TryBeginDrop(Id("a"), &wait);
  r2.EndDrop(Id("a"), std::nullopt, false);
  EXPECT_EQ(r2.TryBeginPrefetch(At(2)), std::nullopt) << "a was dropped";

  Residency r3 = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r3, Id("a"), 0, Expect::kReturning, 10);
  ServeExpecting(r3, Id("b"), 1, Expect::kDone, 0);
  ServeExpecting(r3, Id("a"), 2, Expect::kDone, 0);  // back on its own, and done
  EXPECT_EQ(r3.TryBeginPrefetch(At(3)), std::nullopt) << "a came back: b was done";
}

TEST_F(ResidencyTest, AnAgentRestoredAheadAndEvictedUnusedIsNotRestoredAheadAgain) {
  Residency r = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 10);
  ServeExpecting(r, Id("b"), 1, Expect::kDone, 0);
  std::optional<Plan> plan = r.TryBeginPrefetch(At(2));
  ASSERT_TRUE(plan);
  ASSERT_TRUE(r.CompleteSwitch(*plan, {false, true, false, 100}).ok());
  EXPECT_EQ(ServeExpecting(r, Id("c"), 3, Expect::kDone, 0), Id("a")) << "unused";
  EXPECT_EQ(r.TryBeginPrefetch(At(4)), std::nullopt) << "c is done, but a had its chance";
}

TEST_F(ResidencyTest, AFailedRestoreAheadLeavesTheSlotFreeAndTheAgentToItsRequest) {
  Residency r = Make(1, 0, Eviction::kPredicted);
  ServeExpecting(r, Id("a"), 0, Expect::kReturning, 10);
  ServeExpecting(r, Id("b"), 1, Expect::kDone, 0);
  std::optional<Plan> plan = r.TryBeginPrefetch(At(2));
  ASSERT_TRUE(plan);
  ASSERT_TRUE(r.CompleteSwitch(*plan, {false, false, true, 0}).ok());
  EXPECT_EQ(r.View(plan->slot).phase, SlotPhase::kFree);
  EXPECT_FALSE(r.View(plan->slot).stale) << "erased";
  std::optional<Plan> back = r.TryAcquire(Id("a"), At(3));
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->restore) << "its file is still its memory";
  EXPECT_FALSE(back->prefetched);
}

TEST_F(ResidencyTest, AwayAgentsAreBoundedTheLatestMakingRoom) {
  const int n = Residency::kMaxAway + 10;
  Residency r = Make(1, 0, Eviction::kLru);
  for (int i = 0; i < n; ++i) {  // each evicts the one before, back in 1000 - i
    const std::string id = "t" + std::to_string(i);
    ServeExpecting(r, AgentId::Parse(id).value(), i, Expect::kReturning, 1000 - 2 * i);
  }
  ServeExpecting(r, Id("done"), n, Expect::kDone, 0);
  int prefetched = 0;
  std::optional<AgentId> first;
  while (std::optional<Plan> plan = r.TryBeginPrefetch(At(n + 1))) {
    if (!first) first = plan->tenant;
    ASSERT_TRUE(r.CompleteSwitch(*plan, {true, false, true, 0}).ok()) << "each one fails";
    ++prefetched;
  }
  EXPECT_EQ(prefetched, Residency::kMaxAway);
  EXPECT_EQ(first, AgentId::Parse("t" + std::to_string(n - 1)).value()) << "back soonest";
}

}  // namespace
}  // namespace agentkv

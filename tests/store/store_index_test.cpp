#include "store/store_index.h"

#include <gtest/gtest.h>

#include "store/sha256.h"

namespace agentkv {
namespace {

AgentId Id(const std::string& s) { return AgentId::Parse(s).value(); }

StoredMemory Memory(const AgentId& agent, long long bytes, std::int64_t used,
                    long long generation = 1, const std::string& node = "") {
  const std::string state = Sha256Hex(agent.str()) + "." + std::to_string(generation) + "." +
                            (node.empty() ? "" : node + ".") + "kv";
  return StoredMemory{MemoryInfo{agent, 40, bytes, 100, 200, used},
                      state,
                      generation,
                      0xfeed,
                      "fingerprint-of-the-model",
                      7,
                      std::nullopt,
                      0,
                      "scope1"};
}

TEST(StoreIndex, GivesBackEveryFieldOfWhatItWasGiven) {
  StoreIndex index(0);
  StoredMemory m = Memory(Id("planner"), 4096, 300, 12, "node-2");
  m.info.tokens = std::nullopt;
  index.Load({m});
  std::optional<StoredMemory> got = index.Lookup(Id("planner"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state_file, Sha256Hex("planner") + ".12.node-2.kv");
  EXPECT_EQ(got->info.tokens, std::nullopt);
  EXPECT_EQ(got->info.bytes, 4096);
  EXPECT_EQ(got->info.created, 100);
  EXPECT_EQ(got->info.updated, 200);
  EXPECT_EQ(got->info.last_used, 300);
  EXPECT_EQ(got->generation, 12);
  EXPECT_EQ(got->checksum, 0xfeedu);
  EXPECT_EQ(got->fingerprint, "fingerprint-of-the-model");
  EXPECT_EQ(got->prompt_key, 7u);
  EXPECT_EQ(got->scope, "scope1");
  EXPECT_FALSE(got->verified);

  FileStamp stamp{1, 2, 4096, 3, 4};
  index.SetVerified(Id("planner"), 12, stamp, 500);
  got = index.Lookup(Id("planner"));
  ASSERT_TRUE(got->verified);
  EXPECT_EQ(*got->verified, stamp);
  EXPECT_EQ(got->verified_at, 500);
  index.SetVerified(Id("planner"), 11, FileStamp{}, 600);  // another generation: ignored
  EXPECT_EQ(index.Lookup(Id("planner"))->verified_at, 500);
}

TEST(StoreIndex, AStateFileOfAnotherShapeComesBackWhole) {
  StoreIndex index(0);
  StoredMemory m = Memory(Id("coder"), 10, 1);
  m.state_file = "some-other-name.kv";
  index.CommitSave(m);
  EXPECT_EQ(index.Lookup(Id("coder"))->state_file, "some-other-name.kv");
}

TEST(StoreIndex, CountsAgentsAndInternalMemoriesApart) {
  StoreIndex index(0);
  index.Load({Memory(Id("a"), 1, 1), Memory(Id("b"), 1, 2), Memory(AgentId::Internal("p1"), 1, 3)});
  EXPECT_EQ(index.Count(false), 2u);
  EXPECT_EQ(index.Count(true), 1u);
  EXPECT_EQ(index.InternalIds(), std::vector<AgentId>{AgentId::Internal("p1")});
  index.Take(AgentId::Internal("p1"));
  index.Take(Id("a"));
  EXPECT_EQ(index.Count(false), 1u);
  EXPECT_EQ(index.Count(true), 0u);
  EXPECT_TRUE(index.InternalIds().empty());
  EXPECT_EQ(index.TotalBytes(), 1u);
}

TEST(StoreIndex, TheBudgetTakesTheLeastRecentlyUsedFirstAndSparesWhatItMust) {
  StoreIndex index(30);  // bytes
  // Loaded out of order: the order of use is what their metadata says.
  index.Load({Memory(Id("c"), 10, 30), Memory(Id("a"), 10, 10), Memory(Id("b"), 10, 20)});
  EXPECT_TRUE(index.ChooseBudgetVictims({}).empty()) << "30 bytes fit a budget of 30";
  index.CommitSave(Memory(Id("d"), 10, 40));  // 40 bytes now
  index.Touch(Id("a"), 50);                   // a is the most recent now: b the least
  std::vector<StoredMemory> victims = index.ChooseBudgetVictims({});
  ASSERT_EQ(victims.size(), 1u);
  EXPECT_EQ(victims[0].info.agent, Id("b"));
  index.DoneRemoving(Id("b"));

  index.CommitSave(Memory(Id("e"), 20, 60));       // c, d, a, e: 50 bytes
  (void)index.Hold(Id("c"));                       // in use: spared
  victims = index.ChooseBudgetVictims({Id("d")});  // d kept while others remain
  ASSERT_EQ(victims.size(), 2u);
  EXPECT_EQ(victims[0].info.agent, Id("a"));
  EXPECT_EQ(victims[1].info.agent, Id("e"));
  EXPECT_EQ(index.TotalBytes(), 20u);
  index.Release(Id("c"));

  // Nothing but the kept one left to take: it goes too.
  index.DoneRemoving(Id("a"));
  index.DoneRemoving(Id("e"));
  index.CommitSave(Memory(Id("f"), 25, 70));  // c, d, f: 45 bytes
  (void)index.Hold(Id("c"));
  (void)index.Hold(Id("f"));
  victims = index.ChooseBudgetVictims({Id("d")});
  ASSERT_EQ(victims.size(), 1u);
  EXPECT_EQ(victims[0].info.agent, Id("d"));
}

TEST(StoreIndex, PagesOfIdsAreInIdOrderWithTheirTotal) {
  StoreIndex index(0);
  std::vector<StoredMemory> loaded;
  for (const char* id : {"m", "c", "x", "a", "k", "plan-2", "plan-1"}) {
    loaded.push_back(Memory(Id(id), 1, 1));
  }
  loaded.push_back(Memory(AgentId::Internal("snapshot"), 1, 1));  // never listed
  index.Load(loaded);
  auto ids = [](const StoreIndex::IdPage& page) {
    std::string out;
    for (const AgentId& a : page.ids) out += a.str() + " ";
    return out;
  };
  // "b" holds a slot and has no memory yet; "c" has both; "b" twice.
  const std::vector<AgentId> more = {Id("b"), Id("c"), Id("b")};
  StoreIndex::IdPage page = index.PageOfIds("", 0, 3, more);
  EXPECT_EQ(page.total, 8u);
  EXPECT_EQ(ids(page), "a b c ");
  EXPECT_EQ(ids(index.PageOfIds("", 3, 3, more)), "k m plan-1 ");
  EXPECT_EQ(ids(index.PageOfIds("", 6, 3, more)), "plan-2 x ");
  EXPECT_EQ(ids(index.PageOfIds("", 8, 3, more)), "");
  page = index.PageOfIds("plan", 1, 5, more);
  EXPECT_EQ(page.total, 2u);
  EXPECT_EQ(ids(page), "plan-2 ");
}

}  // namespace
}  // namespace agentkv

// Two Store objects on one directory, each a node of a shared memory
// directory (StoreOptions::node): what one saves or deletes the other sees
// on Refresh, neither writes the other's names, and neither deletes or
// quarantines a memory the other saved since it looked.
#include <gtest/gtest.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "store/store.h"
#include "store/store_files.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

class SharedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-shared-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> Node(const std::string& node, std::uint64_t budget = 0) {
    StoreOptions o;
    o.min_free_bytes = 0;
    o.budget_bytes = budget;
    o.node = node;
    auto s = std::make_unique<Store>(dir_, "fp", o, [this] { return clock_; });
    EXPECT_TRUE(s->Open().ok());
    return s;
  }
  // Plays llama-server's part: writes the temporary the store asked for.
  Status Save(Store& s, const char* agent, const std::string& kv) {
    Result<std::string> temp = s.BeginSave(Id(agent), 10);
    EXPECT_TRUE(temp.ok());
    std::ofstream(dir_ / temp.value(), std::ios::binary) << kv;
    return s.CommitSave(Id(agent), static_cast<long long>(kv.size()));
  }
  std::string Restored(Store& s, const char* agent) {
    Result<RestoreFile> f = s.PrepareRestore(Id(agent));
    if (!f.ok()) return "(" + f.status().message() + ")";
    std::ifstream in(dir_ / f->name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<std::string> Files() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string Hash(const char* agent) { return StoreFiles::Hash(Id(agent)); }

  fs::path dir_;
  std::int64_t clock_ = 1000;
};

TEST_F(SharedStoreTest, WhatOneNodeSavesTheOtherFindsOnRefresh) {
  auto a = Node("node-a");
  auto b = Node("node-b");
  ASSERT_TRUE(Save(*a, "planner", "turn-1").ok());
  EXPECT_FALSE(b->HasMemory(Id("planner")));  // its index is a cache
  std::optional<std::string> file = b->Refresh(Id("planner"));
  ASSERT_TRUE(file);
  EXPECT_EQ(*file, a->StateFile(Id("planner")));
  EXPECT_EQ(Restored(*b, "planner"), "turn-1");

  // b saves the next turn: a's index still names its own older file.
  ASSERT_TRUE(Save(*b, "planner", "turn-2").ok());
  EXPECT_NE(a->StateFile(Id("planner")), b->StateFile(Id("planner")));
  EXPECT_EQ(a->Refresh(Id("planner")), b->StateFile(Id("planner")));
  EXPECT_EQ(Restored(*a, "planner"), "turn-2");
}

TEST_F(SharedStoreTest, AFileReplacedElsewhereBeforeItsRestoreIsNotQuarantined) {
  auto a = Node("node-a");
  auto b = Node("node-b");
  ASSERT_TRUE(Save(*a, "planner", "turn-1").ok());
  b->Refresh(Id("planner"));
  ASSERT_TRUE(Save(*b, "planner", "turn-2").ok());  // deletes a's file
  // a did not look again: its index names the deleted file.
  EXPECT_EQ(Restored(*a, "planner"), "turn-2");
  EXPECT_EQ(a->quarantined(), 0);
}

// The same path when the memory was deleted elsewhere meanwhile: no memory,
// and nothing quarantined; but a file that fails its check while it is still
// the newest is quarantined as before.
TEST_F(SharedStoreTest, AMemoryDeletedElsewhereIsNotQuarantinedButADamagedNewestOneIs) {
  auto a = Node("node-a");
  auto b = Node("node-b");
  ASSERT_TRUE(Save(*a, "gone", "v1").ok());
  b->Refresh(Id("gone"));
  EXPECT_TRUE(a->Remove(Id("gone")).value());
  EXPECT_FALSE(b->PrepareRestore(Id("gone")).ok());
  EXPECT_FALSE(b->HasMemory(Id("gone")));
  EXPECT_EQ(b->quarantined(), 0);
  ASSERT_TRUE(Save(*a, "damaged", "abcdef").ok());
  b->Refresh(Id("damaged"));
  std::ofstream(dir_ / a->StateFile(Id("damaged")).value(), std::ios::binary) << "abcdeX";
  EXPECT_FALSE(b->PrepareRestore(Id("damaged")).ok());
  EXPECT_EQ(b->quarantined(), 1);
}

TEST_F(SharedStoreTest, EachNodeWritesNamesOfItsOwnAndTheLastSaveRules) {
  auto a = Node("node-a");
  auto b = Node("node-b");
  ASSERT_TRUE(Save(*a, "coder", "from-a").ok());
  b->Refresh(Id("coder"));
  ASSERT_TRUE(Save(*b, "coder", "from-b").ok());
  const std::string h = Hash("coder");
  // b's save replaced a's file: one state file and the metadata remain.
  EXPECT_EQ(Files(), (std::vector<std::string>{h + ".2.node-b.kv", h + ".meta"}));
  // Two saves racing from the same generation: both names differ, the
  // metadata names the last one, and the other file is gone or garbage.
  a->Refresh(Id("coder"));
  Result<std::string> ta = a->BeginSave(Id("coder"), 10);
  Result<std::string> tb = b->BeginSave(Id("coder"), 10);
  ASSERT_TRUE(ta.ok() && tb.ok());
  EXPECT_NE(ta.value(), tb.value());
  std::ofstream(dir_ / ta.value()) << "race-a";
  std::ofstream(dir_ / tb.value()) << "race-b";
  ASSERT_TRUE(a->CommitSave(Id("coder"), 6).ok());
  ASSERT_TRUE(b->CommitSave(Id("coder"), 6).ok());
  auto c = Node("node-c");
  EXPECT_EQ(Restored(*c, "coder"), "race-b");
  a->Refresh(Id("coder"));
  EXPECT_EQ(Restored(*a, "coder"), "race-b");
}

TEST_F(SharedStoreTest, ADeletionElsewhereIsSeenAndAStaleDeletionKeepsTheNewerSave) {
  auto a = Node("node-a");
  auto b = Node("node-b");
  ASSERT_TRUE(Save(*a, "critic", "v1").ok());
  b->Refresh(Id("critic"));
  EXPECT_TRUE(b->Remove(Id("critic")).value());
  EXPECT_EQ(a->Refresh(Id("critic")), std::nullopt);
  EXPECT_FALSE(a->HasMemory(Id("critic")));

  // a's budget holds one memory; its index still names b's older file of
  // "critic" when a saves another agent: the budget must not delete
  // b's newer save of it.
  auto small = Node("node-s", 3);
  ASSERT_TRUE(Save(*b, "critic", "v2").ok());
  small->Refresh(Id("critic"));
  ASSERT_TRUE(Save(*b, "critic", "v3").ok());
  ASSERT_TRUE(Save(*small, "other", "xyz").ok());  // over budget: "critic" is the LRU victim
  EXPECT_EQ(Restored(*b, "critic"), "v3");
}

TEST_F(SharedStoreTest, AQuarantineOfAStaleFileLeavesTheNewerMemory) {
  auto a = Node("node-a");
  auto b = Node("node-b");
  ASSERT_TRUE(Save(*a, "researcher", "old").ok());
  b->Refresh(Id("researcher"));
  ASSERT_TRUE(Save(*a, "researcher", "new").ok());
  b->Quarantine(Id("researcher"), "a test judged the old file bad");
  EXPECT_EQ(Restored(*a, "researcher"), "new");
  auto c = Node("node-c");
  EXPECT_EQ(Restored(*c, "researcher"), "new");
}

TEST_F(SharedStoreTest, OpenLeavesALiveNodesTemporariesAndRemovesItsOwnAndOldOnes) {
  const std::string h = Hash("planner");
  fs::create_directories(dir_);
  const std::vector<std::string> own = {h + ".3.node-a.kv.tmp", h + ".meta.node-a.tmp",
                                        h + ".9.node-a.kv"};  // the last an orphan
  const std::vector<std::string> live = {h + ".4.node-b.kv.tmp", h + ".meta.node-b.tmp",
                                         h + ".8.node-b.kv"};
  const std::string old_foreign = h + ".5.node-c.kv.tmp";
  for (const auto& n : own) std::ofstream(dir_ / n) << "x";
  for (const auto& n : live) std::ofstream(dir_ / n) << "x";
  std::ofstream(dir_ / old_foreign) << "x";
  clock_ = ::time(nullptr);
  const struct timeval two_hours_ago[2] = {{clock_ - 7200, 0}, {clock_ - 7200, 0}};
  ASSERT_EQ(::utimes((dir_ / old_foreign).c_str(), two_hours_ago), 0);

  auto a = Node("node-a");
  EXPECT_EQ(Files(), (std::vector<std::string>{live[0], live[2], live[1]}));
}

TEST_F(SharedStoreTest, NodeNamesAreCheckedAndADirectoryOfOneKeepsItsNames) {
  EXPECT_TRUE(StoreFiles::ValidNodeName("gpu-box-7"));
  EXPECT_FALSE(StoreFiles::ValidNodeName(""));
  EXPECT_FALSE(StoreFiles::ValidNodeName("Node_A"));
  EXPECT_FALSE(StoreFiles::ValidNodeName("a.b"));
  EXPECT_FALSE(StoreFiles::ValidNodeName(std::string(33, 'a')));
  auto single = Node("");
  ASSERT_TRUE(Save(*single, "planner", "kv").ok());
  EXPECT_EQ(single->StateFile(Id("planner")), Hash("planner") + ".1.kv");
  // The same directory opened shared later reads the older names.
  single.reset();
  auto a = Node("node-a");
  EXPECT_EQ(Restored(*a, "planner"), "kv");
}

}  // namespace
}  // namespace agentkv

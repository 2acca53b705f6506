#include "agentkv/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace agentkv {
namespace {

namespace fs = std::filesystem;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> Open(const std::string& fingerprint = "fp1", StoreOptions o = {}) {
    o.min_free_bytes = 0;
    auto s = std::make_unique<Store>(dir_, fingerprint, o, [this] { return clock_; });
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
  std::vector<std::string> Files(const fs::path& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path StateOf(Store& s, const char* agent) {
    Result<RestoreFile> f = s.PrepareRestore(Id(agent));
    EXPECT_TRUE(f.ok()) << f.status().message();
    return dir_ / f->name;
  }

  fs::path dir_;
  std::int64_t clock_ = 1000;
};

TEST_F(StoreTest, ASavedMemorySurvivesARestartUnderAHashedName) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "planner", "kv-bytes").ok());
  }
  for (const std::string& name : Files(dir_)) {
    EXPECT_EQ(name.find("planner"), std::string::npos) << name;
  }
  auto s = Open();
  ASSERT_TRUE(s->HasMemory(Id("planner")));
  EXPECT_EQ(s->Find(Id("planner"))->bytes, 8);
  EXPECT_EQ(Read(StateOf(*s, "planner")), "kv-bytes");
  EXPECT_EQ(s->TotalBytes(), 8u);
}

TEST_F(StoreTest, ANewSaveReplacesTheOldGenerationAndRemovesIt) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  ASSERT_TRUE(Save(*s, "a", "newer").ok());
  EXPECT_EQ(Read(StateOf(*s, "a")), "newer");
  EXPECT_EQ(Files(dir_).size(), 2u) << "one state file and one metadata file";
  EXPECT_EQ(s->TotalBytes(), 5u);
}

TEST_F(StoreTest, OpeningRemovesWhatACrashLeftAndKeepsTheLastCompleteSave) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    // A crash after the next generation was renamed, before its metadata:
    Result<std::string> temp = s->BeginSave(Id("a"), 10);
    const std::string state = temp.value().substr(0, temp.value().size() - 4);
    std::ofstream(dir_ / state) << "new but unreferenced";
    std::ofstream(dir_ / temp.value()) << "torn";
  }
  auto s = Open();
  EXPECT_EQ(Read(StateOf(*s, "a")), "old");
  EXPECT_EQ(Files(dir_).size(), 2u);
}

TEST_F(StoreTest, AFlippedByteIsDetectedAndTheFileQuarantined) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "abcdefgh").ok());
  const fs::path state = StateOf(*s, "a");
  {
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('X');
  }
  Result<RestoreFile> r = s->PrepareRestore(Id("a"));
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_FALSE(fs::exists(state));
  EXPECT_EQ(s->quarantined(), 1);
  EXPECT_FALSE(Files(dir_ / "quarantine").empty());
}

TEST_F(StoreTest, ATruncatedFileIsQuarantinedWhenTheStoreOpens) {
  fs::path state;
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "abcdefgh").ok());
    state = StateOf(*s, "a");
  }
  fs::resize_file(state, 3);
  auto s = Open();
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, MemoryFromAnotherModelIsNeverOffered) {
  {
    auto s = Open("model-one");
    ASSERT_TRUE(Save(*s, "a", "abcdefgh").ok());
  }
  auto s = Open("model-two");
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, MetadataCopiedOntoAnotherAgentsNameIsRejected) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "abc").ok());
    ASSERT_TRUE(Save(*s, "b", "xyz").ok());
  }
  std::string meta_a, meta_b;
  for (const std::string& n : Files(dir_)) {
    if (n.size() > 5 && n.substr(n.size() - 5) == ".meta") (meta_a.empty() ? meta_a : meta_b) = n;
  }
  fs::copy_file(dir_ / meta_a, dir_ / meta_b, fs::copy_options::overwrite_existing);
  auto s = Open();
  EXPECT_EQ(s->List().size(), 1u);
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, TheBudgetDeletesLeastRecentlyUsedMemoriesFirst) {
  StoreOptions o;
  o.budget_bytes = 10;
  auto s = Open("fp1", o);
  ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
  clock_ = 2000;
  ASSERT_TRUE(Save(*s, "b", "bbbb").ok());
  clock_ = 3000;
  s->Touch(Id("a"));  // a is now more recent than b
  ASSERT_TRUE(Save(*s, "c", "cccc").ok());
  std::vector<AgentId> gone = s->EnforceBudget({Id("c")});
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0], Id("b"));
  EXPECT_LE(s->TotalBytes(), 10u);
  EXPECT_TRUE(s->HasMemory(Id("a")));
  EXPECT_TRUE(s->HasMemory(Id("c")));
  EXPECT_EQ(Files(dir_).size(), 4u);
}

TEST_F(StoreTest, RemoveLeavesNothingOfTheAgentOnDisk) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "abc").ok());
  ASSERT_TRUE(Save(*s, "b", "xyz").ok());
  EXPECT_TRUE(s->Remove(Id("a")));
  EXPECT_FALSE(s->Remove(Id("a")));
  EXPECT_EQ(Files(dir_).size(), 2u);
  EXPECT_TRUE(s->HasMemory(Id("b")));
}

TEST_F(StoreTest, AForkStartsFromACopyOfTheParentsMemory) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "parent", "shared-kv").ok());
  ASSERT_TRUE(s->Fork(Id("parent"), Id("child")).ok());
  EXPECT_EQ(Read(StateOf(*s, "child")), "shared-kv");
  EXPECT_EQ(s->Fork(Id("nobody"), Id("x")).code(), ErrorCode::kNotFound);
}

TEST_F(StoreTest, ASaveIsRefusedWhenTheDiskIsTooFull) {
  auto s = std::make_unique<Store>(dir_, "fp", StoreOptions{0, ~std::uint64_t{0} >> 2});
  ASSERT_TRUE(s->Open().ok());
  EXPECT_EQ(s->BeginSave(Id("a"), 100).status().code(), ErrorCode::kIo);
}

}  // namespace
}  // namespace agentkv

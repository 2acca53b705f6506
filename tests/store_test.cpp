#include "agentkv/store.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

namespace agentkv {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
  std::string Read(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path dir_;
};

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

TEST_F(StoreTest, FileNamesComeFromAHashNeverTheId) {
  const std::string name = Store::FileName(Id("planner"));
  EXPECT_EQ(name.find("planner"), std::string::npos);
  EXPECT_EQ(name.size(), 64u + 5u);
  EXPECT_NE(Store::FileName(Id("a")), Store::FileName(Id("b")));
  EXPECT_EQ(Store::FileName(Id("a")), Store::FileName(Id("a")));
  EXPECT_NE(Store::TempFileName(Id("a")), Store::FileName(Id("a")));
}

TEST_F(StoreTest, OpeningCreatesTheDirectoryAndRemovesTemporaries) {
  Store store(dir_);
  ASSERT_TRUE(store.Open().ok());
  Write(dir_ / Store::TempFileName(Id("a")), "torn");
  Write(dir_ / Store::FileName(Id("a")), "kept");
  ASSERT_TRUE(Store(dir_).Open().ok());
  EXPECT_FALSE(fs::exists(dir_ / Store::TempFileName(Id("a"))));
  EXPECT_EQ(Read(dir_ / Store::FileName(Id("a"))), "kept");
}

TEST_F(StoreTest, CommitReplacesTheMemoryWithTheTemporary) {
  Store store(dir_);
  ASSERT_TRUE(store.Open().ok());
  Write(dir_ / Store::FileName(Id("a")), "old");
  Write(dir_ / Store::TempFileName(Id("a")), "new");
  ASSERT_TRUE(store.CommitSave(Id("a")).ok());
  EXPECT_EQ(Read(dir_ / Store::FileName(Id("a"))), "new");
  EXPECT_FALSE(fs::exists(dir_ / Store::TempFileName(Id("a"))));
}

TEST_F(StoreTest, CommitWithoutATemporaryFailsAndKeepsTheOldMemory) {
  Store store(dir_);
  ASSERT_TRUE(store.Open().ok());
  Write(dir_ / Store::FileName(Id("a")), "old");
  Status s = store.CommitSave(Id("a"));
  EXPECT_EQ(s.code(), ErrorCode::kIo);
  EXPECT_EQ(Read(dir_ / Store::FileName(Id("a"))), "old");
}

TEST_F(StoreTest, RemoveDeletesTheAgentsFiles) {
  Store store(dir_);
  ASSERT_TRUE(store.Open().ok());
  Write(dir_ / Store::FileName(Id("a")), "x");
  Write(dir_ / Store::FileName(Id("b")), "y");
  store.Remove(Id("a"));
  EXPECT_FALSE(fs::exists(dir_ / Store::FileName(Id("a"))));
  EXPECT_TRUE(fs::exists(dir_ / Store::FileName(Id("b"))));
}

}  // namespace
}  // namespace agentkv

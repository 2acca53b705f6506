#include "store/dir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace agentkv {
namespace {

namespace fs = std::filesystem;

class DirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-lock-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DirLockTest, ASecondOwnerIsRefusedWithTheHoldersPidUntilTheFirstLetsGo) {
  Result<std::unique_ptr<DirLock>> first = DirLock::Acquire(dir_, "");
  ASSERT_TRUE(first.ok()) << first.status().message();
  Result<std::unique_ptr<DirLock>> second = DirLock::Acquire(dir_, "");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kConflict);
  EXPECT_NE(
      second.status().message().find("LOCK is held by agentkv pid " + std::to_string(::getpid())),
      std::string::npos)
      << second.status().message();
  first.value().reset();
  EXPECT_TRUE(DirLock::Acquire(dir_, "").ok());
  EXPECT_EQ(fs::status(dir_ / "LOCK").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(DirLockTest, EachNodeOfASharedDirectoryHasItsOwnLockAndANameRunsOnce) {
  Result<std::unique_ptr<DirLock>> a = DirLock::Acquire(dir_, "a");
  Result<std::unique_ptr<DirLock>> b = DirLock::Acquire(dir_, "b");
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  Result<std::unique_ptr<DirLock>> again = DirLock::Acquire(dir_, "a");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("another node runs with --node-id a"), std::string::npos)
      << again.status().message();
}

TEST_F(DirLockTest, ADaemonWithoutANodeNameIsRefusedWhereNodesShareTheDirectory) {
  Result<std::unique_ptr<DirLock>> node = DirLock::Acquire(dir_, "a");
  ASSERT_TRUE(node.ok());
  Result<std::unique_ptr<DirLock>> alone = DirLock::Acquire(dir_, "");
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("give this one --node-id too"), std::string::npos)
      << alone.status().message();
  // The refused one left no lock behind.
  node.value().reset();
  EXPECT_TRUE(DirLock::Acquire(dir_, "").ok());
}

TEST_F(DirLockTest, ANodeIsRefusedWhereADaemonOwnsTheWholeDirectory) {
  Result<std::unique_ptr<DirLock>> alone = DirLock::Acquire(dir_, "");
  ASSERT_TRUE(alone.ok());
  Result<std::unique_ptr<DirLock>> node = DirLock::Acquire(dir_, "a");
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("an agentkv without --node-id owns the whole directory"),
            std::string::npos)
      << node.status().message();
}

TEST_F(DirLockTest, ALockFileThatIsASymlinkIsNotFollowed) {
  const fs::path elsewhere = dir_ / "elsewhere";
  fs::create_directories(dir_ / "memory");
  fs::create_symlink(elsewhere, dir_ / "memory" / "LOCK");
  Result<std::unique_ptr<DirLock>> lock = DirLock::Acquire(dir_ / "memory", "");
  EXPECT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), ErrorCode::kIo);
  EXPECT_FALSE(fs::exists(elsewhere));
}

}  // namespace
}  // namespace agentkv

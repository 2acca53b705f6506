// The memory directory through `agentkv serve` as a user runs it: what it
// holds (conversations: a saved KV starts with the prompt's token ids) is
// its owner's alone whatever the umask, and a directory others can read is
// warned about.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "integration/agentkv_process.h"
#include "integration/real_llama.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

class MemoryDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-memdir-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    saved_umask_ = ::umask(022);  // a common default: files 0644, directories 0755
  }
  void TearDown() override {
    ::umask(saved_umask_);
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::vector<std::string> ServeArgs() const { return testing::OwnLlamaArgs(dir_); }
  static bool OthersHaveAccess(const fs::path& p) {
    const fs::perms others = fs::perms::group_all | fs::perms::others_all;
    return (fs::symlink_status(p).permissions() & others) != fs::perms::none;
  }
  fs::path dir_;
  mode_t saved_umask_ = 0;
};

TEST_F(MemoryDirTest, WhatAgentkvAndItsLlamaServerWriteIsTheirOwnersAloneWhateverTheUmask) {
  testing::AgentkvProcess agentkv(ServeArgs(), {});
  httplib::Client c("127.0.0.1", agentkv.port());
  c.set_read_timeout(std::chrono::seconds(120));
  for (const char* agent : {"a", "b"}) {
    httplib::Result r =
        c.Post(std::string("/agents/") + agent + "/completion",
               R"({"prompt":"one two three four","n_predict":4})", "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  EXPECT_EQ(agentkv.Terminate(), 0);  // saves every agent, then stops
  int kv = 0, meta = 0;
  EXPECT_FALSE(OthersHaveAccess(dir_ / "memory"));
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir_ / "memory")) {
    EXPECT_FALSE(OthersHaveAccess(e.path())) << e.path();
    kv += e.path().extension() == ".kv";
    meta += e.path().extension() == ".meta";
  }
  EXPECT_EQ(kv, 2);  // written by llama-server
  EXPECT_EQ(meta, 2);
  EXPECT_FALSE(OthersHaveAccess(dir_ / "llama.log"));
}

TEST_F(MemoryDirTest, ADirectoryOthersCanReadIsWarnedAbout) {
  fs::create_directories(dir_ / "memory");
  fs::permissions(dir_ / "memory", fs::perms::owner_all | fs::perms::group_read |
                                       fs::perms::group_exec | fs::perms::others_read |
                                       fs::perms::others_exec);
  testing::AgentkvProcess agentkv(ServeArgs(), {});
  EXPECT_NE(agentkv.log().find("can be read by other users (mode 755)"), std::string::npos)
      << agentkv.log();
}

}  // namespace
}  // namespace agentkv

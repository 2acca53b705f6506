#include "upstream/child_record.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/launcher.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

// A process that waits for its stdin to close, started with `args` after
// its script (as llama-server's own arguments would be), and reaped by
// this test.
class Waiter {
 public:
  explicit Waiter(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/bin/sh", "-c", "echo ready; read line", "sh"};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::LaunchOptions o;
    o.pipe_input = true;
    o.pipe_output = true;
    const testing::Launched child = testing::Launch(argv, o);
    EXPECT_GT(child.pid, 0) << child.error;
    pid_ = child.pid;
    input_ = child.input;
    // Its first line: the shell runs, its command line is in /proc (right
    // after posix_spawn it may still be empty).
    char ready[6] = {};
    EXPECT_EQ(::read(child.output, ready, sizeof ready), 6);
    ::close(child.output);
  }
  ~Waiter() {
    ::close(input_);  // it exits, if it still runs
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  pid_t pid() const { return pid_; }
  // True if a signal ended it (reaps it); false if it still runs.
  bool Killed() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    reaped_ = true;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  int input_ = -1;
  bool reaped_ = false;
};

class ChildRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-record-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "memory");
    record_ = ChildRecordPath(dir_ / "memory", "");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Record() {
    std::ifstream in(record_);
    std::string text;
    std::getline(in, text);
    return text;
  }
  // The record's fields: pid, start ticks, boot id, the agentkv's pid.
  std::vector<std::string> Fields() {
    std::istringstream in(Record());
    std::vector<std::string> f;
    for (std::string x; in >> x;) f.push_back(x);
    return f;
  }
  void Rewrite(const std::vector<std::string>& f) {
    std::ofstream out(record_, std::ios::trunc);
    for (const std::string& x : f) out << x << ' ';
    out << '\n';
  }
  // Records `pid` as started by an agentkv that has died since (this
  // test's process, its parent, is alive).
  void RecordAsOrphan(pid_t pid) {
    ASSERT_TRUE(WriteChildRecord(record_, pid).ok());
    const pid_t dead = testing::EndedPid();
    std::vector<std::string> f = Fields();
    ASSERT_EQ(f.size(), 4u) << Record();
    f[3] = std::to_string(dead);
    Rewrite(f);
  }

  fs::path dir_, record_;
};

TEST_F(ChildRecordTest, EndsTheRecordedProcessThatServesFromTheDirectory) {
  Waiter left({"--model", "m.gguf", "--slot-save-path", (dir_ / "memory" / "").string()});
  RecordAsOrphan(left.pid());
  RecordedChild found;
  ASSERT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, left.pid());
  EXPECT_TRUE(left.Killed());
  EXPECT_FALSE(fs::exists(record_));
}

// A second agentkv started on the directory by mistake must not take the
// first one's llama-server away.
TEST_F(ChildRecordTest, LeavesTheLlamaServerOfAnAgentkvThatStillRuns) {
  Waiter served({"--slot-save-path", (dir_ / "memory" / "").string()});
  ASSERT_TRUE(WriteChildRecord(record_, served.pid()).ok());  // by this live process
  RecordedChild found;
  ASSERT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, -1);
  EXPECT_EQ(found.live_parent, ::getpid());
  EXPECT_EQ(found.left_running, served.pid());
  EXPECT_FALSE(served.Killed());
  EXPECT_TRUE(fs::exists(record_)) << "still that agentkv's record";
}

TEST_F(ChildRecordTest, LeavesAProcessThatServesAnotherDirectory) {
  fs::create_directories(dir_ / "other");
  Waiter other({"--slot-save-path", (dir_ / "other" / "").string()});
  RecordAsOrphan(other.pid());
  RecordedChild found;
  ASSERT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, -1);
  EXPECT_FALSE(other.Killed());
  EXPECT_FALSE(fs::exists(record_)) << "a record that names no process of ours is dropped";
}

// The pid was reused: the process with it now started at another time.
TEST_F(ChildRecordTest, LeavesAProcessThatStartedAtAnotherTime) {
  Waiter reused({"--slot-save-path", (dir_ / "memory" / "").string()});
  RecordAsOrphan(reused.pid());
  std::vector<std::string> f = Fields();
  f[1] = std::to_string(std::stoll(f[1]) + 1);
  Rewrite(f);
  RecordedChild found;
  ASSERT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, -1);
  EXPECT_FALSE(reused.Killed());
}

// A record from before a reboot, or from another host on a shared directory.
TEST_F(ChildRecordTest, LeavesAProcessRecordedOnAnotherBoot) {
  Waiter elsewhere({"--slot-save-path", (dir_ / "memory" / "").string()});
  RecordAsOrphan(elsewhere.pid());
  std::vector<std::string> f = Fields();
  f[2] = "00000000-0000-0000-0000-000000000000";
  Rewrite(f);
  RecordedChild found;
  ASSERT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, -1);
  EXPECT_FALSE(elsewhere.Killed());
}

TEST_F(ChildRecordTest, NoRecordOrAGarbledOneEndsNothing) {
  RecordedChild found;
  EXPECT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, -1);
  std::ofstream(record_) << "1 2\n";
  EXPECT_TRUE(EndRecordedChild(record_, dir_ / "memory", &found).ok());
  EXPECT_EQ(found.ended, -1);
  EXPECT_FALSE(fs::exists(record_));
}

TEST(ChildRecordPath, IsANameTheStoreLeavesAloneAndOneANodeOwns) {
  EXPECT_EQ(ChildRecordPath("/m", ""), fs::path("/m/agentkv-llama-server.pid"));
  EXPECT_EQ(ChildRecordPath("/m", "n1"), fs::path("/m/agentkv-llama-server.n1.pid"));
}

}  // namespace
}  // namespace agentkv

// No llama-server outlives the agentkv that started it: SIGKILL at any
// moment (while llama-server loads, while it serves a request, while idle)
// takes llama-server with it, and an agentkv starting on a memory directory
// ends a llama-server that an earlier instance left there.
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "integration/agentkv_process.h"
#include "integration/real_llama.h"
#include "upstream/child_record.h"
#include "upstream/llama_process.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

// The pid agentkv recorded for its llama-server, or -1.
pid_t RecordedPid(const fs::path& memory) {
  std::ifstream in(ChildRecordPath(memory, ""));
  long long pid = -1;
  in >> pid;
  return static_cast<pid_t>(pid);
}

// True once `pid` has exited, waiting at most `bound` (a pidfd turns
// readable when its process exits; no polling loop).
bool GoneWithin(pid_t pid, std::chrono::milliseconds bound) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  const bool gone = ::poll(&p, 1, static_cast<int>(bound.count())) == 1;
  ::close(fd);
  return gone;
}

// Processes that serve slots from `memory` (llama-servers of ours), by
// their command lines in /proc.
int ServersOn(const fs::path& memory) {
  int found = 0;
  for (const fs::directory_entry& e : fs::directory_iterator("/proc")) {
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    if (cmdline.find("--slot-save-path " + (memory / "").string()) != std::string::npos) {
      ++found;
    }
  }
  return found;
}

class OrphanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-orphan-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "memory");
    ASSERT_TRUE(fs::exists(testing::LlamaServerBinary())) << "run scripts/setup.sh";
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::vector<std::string> ServeArgs() const { return testing::OwnLlamaArgs(dir_); }

  fs::path dir_;
};

// Ten kill -9s of agentkv: two while llama-server loads, four while a
// request streams, four while idle. Each time llama-server exits within
// seconds, and none is left at the end.
TEST_F(OrphanTest, AgentkvKilledWithSigkillAtAnyMomentTakesItsLlamaServerWithIt) {
  for (int n = 0; n < 10; ++n) {
    SCOPED_TRACE("kill " + std::to_string(n));
    testing::AgentkvProcess::Options options;
    if (n < 2) options.ready_line = "started llama-server (pid";
    testing::AgentkvProcess agentkv(ServeArgs(), options);
    const pid_t llama = RecordedPid(dir_ / "memory");
    ASSERT_GT(llama, 0) << agentkv.log();
    if (n >= 2 && n < 6) {
      // Killed as the first bytes of a long answer arrive: llama-server is
      // decoding for it.
      httplib::Client c("127.0.0.1", agentkv.port());
      c.set_read_timeout(std::chrono::seconds(120));
      httplib::Request req;
      req.method = "POST";
      req.path = "/agents/streamer/completion";
      req.headers.emplace("Content-Type", "application/json");
      req.body = R"({"prompt":"one two three","n_predict":4000,"ignore_eos":true,"stream":true})";
      bool killed = false;
      req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
        if (!killed) killed = ::kill(agentkv.pid(), SIGKILL) == 0;
        return false;
      };
      c.send(req);
      ASSERT_TRUE(killed) << agentkv.log();
    } else {
      ASSERT_EQ(::kill(agentkv.pid(), SIGKILL), 0);
    }
    agentkv.Wait();
    EXPECT_TRUE(GoneWithin(llama, std::chrono::seconds(10)))
        << "llama-server (pid " << llama << ") outlived agentkv";
  }
  EXPECT_EQ(ServersOn(dir_ / "memory"), 0);
}

// A llama-server left serving the directory (as by an agentkv whose death
// signal did not reach it) is ended by the next agentkv that starts there.
TEST_F(OrphanTest, AnAgentkvStartingOnTheDirectoryEndsTheLlamaServerLeftThere) {
  LlamaProcessOptions left;
  left.binary = testing::LlamaServerBinary();
  left.model = testing::TestModel();
  left.memory_dir = dir_ / "memory";
  left.record_file = ChildRecordPath(dir_ / "memory", "");
  left.extra_args = {"--threads", "1"};
  left.log_file = dir_ / "left.log";
  LlamaProcess earlier(left);
  ASSERT_TRUE(earlier.Start(left).ok());
  const pid_t pid = earlier.pid();
  ASSERT_EQ(RecordedPid(dir_ / "memory"), pid);
  // As left by an agentkv that has died since (this test, which started it,
  // still runs, and an agentkv never ends a live one's llama-server).
  {
    std::ifstream in(ChildRecordPath(dir_ / "memory", ""));
    std::string pid_field, ticks, boot, parent;
    in >> pid_field >> ticks >> boot >> parent;
    const pid_t dead = testing::EndedPid();
    std::ofstream(ChildRecordPath(dir_ / "memory", ""), std::ios::trunc)
        << pid_field << ' ' << ticks << ' ' << boot << ' ' << dead << '\n';
  }

  testing::AgentkvProcess agentkv(ServeArgs(), {});
  EXPECT_NE(agentkv.log().find("ended the llama-server (pid " + std::to_string(pid) +
                               ") that an earlier agentkv left running"),
            std::string::npos)
      << agentkv.log();
  ASSERT_TRUE(GoneWithin(pid, std::chrono::seconds(10)));
  EXPECT_EQ(ServersOn(dir_ / "memory"), 1) << "agentkv's own, only";
  EXPECT_NE(RecordedPid(dir_ / "memory"), pid);
  int status = 0;
  ASSERT_TRUE(earlier.Exited(&status));  // it was this test's child
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

// A second agentkv started on a directory by mistake is refused (the
// directory's lock names the first one) and leaves the first one's
// llama-server alone.
TEST_F(OrphanTest, ASecondAgentkvOnTheDirectoryIsRefusedAndLeavesTheFirstOnesLlamaServer) {
  testing::AgentkvProcess first(ServeArgs(), {});
  const pid_t llama = RecordedPid(dir_ / "memory");
  ASSERT_GT(llama, 0);
  testing::AgentkvProcess::Options options;
  options.ready_line = "is in use";
  testing::AgentkvProcess second(ServeArgs(), options);
  const int status = second.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  EXPECT_NE(second.log().find("LOCK is held by agentkv pid " + std::to_string(first.pid())),
            std::string::npos)
      << second.log();
  EXPECT_EQ(::kill(llama, 0), 0) << "the first one's llama-server still runs";
  EXPECT_EQ(ServersOn(dir_ / "memory"), 1);
  EXPECT_EQ(RecordedPid(dir_ / "memory"), llama);
}

}  // namespace
}  // namespace agentkv

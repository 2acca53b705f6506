#include "support/launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace agentkv::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(int fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(Launcher, CollectsStdoutAndStderrAndTheExitStatus) {
  const Finished f = RunToEnd({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(f.output, "out\nerr\n");
  ASSERT_TRUE(WIFEXITED(f.status));
  EXPECT_EQ(WEXITSTATUS(f.status), 3);
}

TEST(Launcher, FeedsItsInput) {
  const std::string input(1 << 20, 'x');  // more than a pipe holds, both ways
  const Finished f = RunToEnd({"cat"}, input);
  EXPECT_EQ(f.output, input);
  EXPECT_EQ(f.status, 0);
}

TEST(Launcher, ANameThatIsNotThereSaysSo) {
  const Launched l = Launch({"/no/such/program"});
  EXPECT_EQ(l.pid, -1);
  EXPECT_NE(l.error.find("/no/such/program"), std::string::npos) << l.error;
  EXPECT_EQ(RunToEnd({"/no/such/program"}).status, -1);
}

TEST(Launcher, WritesItsOutputToAFile) {
  const fs::path file = fs::path(::testing::TempDir()) / "launcher-output.txt";
  std::ofstream(file) << "what was there before\n";
  LaunchOptions o;
  o.output_file = file;
  const Launched l = Launch({"sh", "-c", "echo one; echo two >&2"}, o);
  ASSERT_GT(l.pid, 0) << l.error;
  EXPECT_EQ(Reap(l.pid), 0);
  std::ifstream in(file);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "one\ntwo\n");
  fs::remove(file);
}

TEST(Launcher, SetsAndRemovesEnvironmentVariables) {
  ::setenv("AGENTKV_LAUNCHER_GONE", "here", 1);
  LaunchOptions o;
  o.pipe_output = true;
  o.env = {"AGENTKV_LAUNCHER_GONE", "AGENTKV_LAUNCHER_SET=a=b"};
  const Launched l =
      Launch({"sh", "-c", "echo \"[$AGENTKV_LAUNCHER_GONE][$AGENTKV_LAUNCHER_SET]\""}, o);
  ::unsetenv("AGENTKV_LAUNCHER_GONE");
  ASSERT_GT(l.pid, 0) << l.error;
  EXPECT_EQ(ReadAll(l.output), "[][a=b]\n");
  EXPECT_EQ(Reap(l.pid), 0);
}

TEST(Launcher, LeadsItsOwnGroupWhenAsked) {
  LaunchOptions o;
  o.pipe_input = true;  // it runs until its input closes
  o.own_group = true;
  const Launched own = Launch({"cat"}, o);
  o.own_group = false;
  const Launched shared = Launch({"cat"}, o);
  ASSERT_GT(own.pid, 0);
  ASSERT_GT(shared.pid, 0);
  EXPECT_EQ(::getpgid(own.pid), own.pid);
  EXPECT_EQ(::getpgid(shared.pid), ::getpgrp());
  ::close(own.input);
  ::close(shared.input);
  EXPECT_EQ(Reap(own.pid), 0);
  EXPECT_EQ(Reap(shared.pid), 0);
}

// The test ignores SIGPIPE (as cpp-httplib makes it); the child must not.
TEST(Launcher, StartsTheChildWithDefaultSignals) {
  struct sigaction ignore {
  }, before{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &before);
  const Finished f = RunToEnd({"sh", "-c", "grep '^SigIgn' /proc/self/status"});
  ::sigaction(SIGPIPE, &before, nullptr);
  ASSERT_EQ(f.output.rfind("SigIgn:\t", 0), 0u) << f.output;
  const unsigned long long ignored = std::stoull(f.output.substr(8), nullptr, 16);
  EXPECT_EQ(ignored & (1ULL << (SIGPIPE - 1)), 0u) << f.output;
}

// One child holding another's pipe keeps that pipe open after the other
// exits: its reader never sees the end. Each child holds only its own.
TEST(Launcher, AChildHoldsNoOtherChildsPipes) {
  LaunchOptions o;
  o.pipe_input = true;
  o.pipe_output = true;
  const Launched first = Launch({"cat"}, o);
  const Launched second = Launch({"cat"}, o);  // runs on while the first ends
  ASSERT_GT(first.pid, 0);
  ASSERT_GT(second.pid, 0);
  ASSERT_EQ(::write(first.input, "a\n", 2), 2);
  ::close(first.input);  // the first sees the end of its input only if the second lacks it
  EXPECT_EQ(ReadAll(first.output), "a\n");  // ... and this ends only if the second lacks it
  EXPECT_EQ(Reap(first.pid), 0);
  ::close(second.input);
  EXPECT_EQ(ReadAll(second.output), "");
  EXPECT_EQ(Reap(second.pid), 0);
}

TEST(Launcher, AnEndedPidIsNoLongerThere) {
  const pid_t pid = EndedPid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), -1);
}

}  // namespace
}  // namespace agentkv::testing

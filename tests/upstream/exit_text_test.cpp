#include "upstream/exit_text.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>

namespace agentkv {
namespace {

// What waitpid() stores for a process that exited, or that a signal ended.
int Exited(int code) { return (code & 0xff) << 8; }
int Killed(int signal) { return signal & 0x7f; }

TEST(ExitText, AnExitGivesItsStatus) {
  ASSERT_TRUE(WIFEXITED(Exited(1)));
  EXPECT_EQ(DescribeExit(Exited(1)), "exited with status 1");
}

TEST(ExitText, SigillIsNamedAndSaysWhatToDo) {
  ASSERT_TRUE(WIFSIGNALED(Killed(SIGILL)));
  const std::string text = DescribeExit(Killed(SIGILL));
  EXPECT_EQ(text.rfind("was killed by SIGILL (Illegal instruction): ", 0), 0u) << text;
  EXPECT_NE(text.find("this CPU cannot run"), std::string::npos) << text;
  EXPECT_NE(text.find("--no-repack"), std::string::npos) << text;
}

TEST(ExitText, SigkillPointsAtTheOutOfMemoryKiller) {
  const std::string text = DescribeExit(Killed(SIGKILL));
  EXPECT_EQ(text.rfind("was killed by SIGKILL (Killed): ", 0), 0u) << text;
  EXPECT_NE(text.find("out-of-memory"), std::string::npos) << text;
}

TEST(ExitText, AnotherSignalIsNamedWithoutAdvice) {
  EXPECT_EQ(DescribeExit(Killed(SIGTERM)), "was killed by SIGTERM (Terminated)");
}

}  // namespace
}  // namespace agentkv

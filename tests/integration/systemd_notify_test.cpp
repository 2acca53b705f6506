// agentkv under a Type=notify unit, as systemd sees it: the datagrams it
// sends to NOTIFY_SOCKET while it starts a real llama-server, serves and
// stops. systemd itself is not needed to listen on that socket.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "integration/agentkv_process.h"
#include "integration/real_llama.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

class SystemdNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("agentkv-notify-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    socket_path_ = (dir_ / "notify.sock").string();
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socket_path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval timeout{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  void TearDown() override {
    ::close(fd_);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Datagrams until one contains `text` (true), or 30 s pass without one.
  bool ReceiveUntil(const std::string& text) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) {
      received_.emplace_back(buf, static_cast<std::size_t>(n));
      if (received_.back().find(text) != std::string::npos) return true;
    }
    return false;
  }

  fs::path dir_;
  std::string socket_path_;
  int fd_ = -1;
  std::vector<std::string> received_;
};

TEST_F(SystemdNotifyTest, ItSaysItStartsIsReadyIsAliveAndStops) {
  testing::AgentkvProcess::Options o;
  o.env = {"NOTIFY_SOCKET=" + socket_path_, "WATCHDOG_USEC=5000000"};
  testing::AgentkvProcess agentkv(testing::OwnLlamaArgs(dir_), o);
  ASSERT_TRUE(ReceiveUntil("READY=1"));
  ASSERT_GE(received_.size(), 3u);
  EXPECT_NE(received_[0].find("STATUS=starting llama-server"), std::string::npos) << received_[0];
  EXPECT_EQ(received_[1], "EXTEND_TIMEOUT_USEC=30000000") << "the model may take long to load";
  EXPECT_NE(received_.back().find("STATUS=serving on 127.0.0.1:" + std::to_string(agentkv.port())),
            std::string::npos)
      << received_.back();
  EXPECT_TRUE(ReceiveUntil("WATCHDOG=1")) << "the watch loop pings";
  ::kill(agentkv.pid(), SIGTERM);
  EXPECT_TRUE(ReceiveUntil("STOPPING=1"));
  EXPECT_EQ(agentkv.Wait(), 0);
}

TEST_F(SystemdNotifyTest, ASocketThatCannotBeWrittenIsOneWarningAndAgentkvServes) {
  testing::AgentkvProcess::Options o;
  o.env = {"NOTIFY_SOCKET=" + (dir_ / "no-such.sock").string()};
  testing::AgentkvProcess agentkv(testing::OwnLlamaArgs(dir_), o);
  EXPECT_EQ(
      testing::PostJson(agentkv.port(), "/v1/chat/completions",
                        {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}})
          .status,
      200);
  EXPECT_EQ(agentkv.Terminate(), 0);
  const std::string log = agentkv.log();
  const std::size_t first = log.find("cannot tell systemd");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("cannot tell systemd", first + 1), std::string::npos) << "one warning";
}

TEST_F(SystemdNotifyTest, WithoutNotifySocketNothingIsSent) {
  testing::AgentkvProcess::Options o;
  o.env = {"NOTIFY_SOCKET"};  // as the test's runner may have it set
  testing::AgentkvProcess agentkv(testing::OwnLlamaArgs(dir_), o);
  char buf[64];
  EXPECT_EQ(::recv(fd_, buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(agentkv.Terminate(), 0);
}

}  // namespace
}  // namespace agentkv

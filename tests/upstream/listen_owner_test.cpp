// ListensOn against this test process's own sockets.
#include "upstream/listen_owner.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace agentkv {
namespace {

// A loopback socket of this process, listening or only bound.
class Socket {
 public:
  explicit Socket(bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    if (listen) {
      EXPECT_EQ(::listen(fd_, 1), 0);
    }
  }
  ~Socket() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(ListensOnTest, FindsThePortThisProcessListensOn) {
  Socket listening(true);
  Result<bool> ours = ListensOn(::getpid(), listening.port());
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  EXPECT_TRUE(ours.value());
}

TEST(ListensOnTest, AnotherProcessDoesNotHoldOurPort) {
  Socket listening(true);
  Result<bool> theirs = ListensOn(::getppid(), listening.port());
  ASSERT_TRUE(theirs.ok());
  EXPECT_FALSE(theirs.value());
}

TEST(ListensOnTest, ABoundSocketThatDoesNotListenDoesNotCount) {
  Socket bound(false);
  Result<bool> ours = ListensOn(::getpid(), bound.port());
  ASSERT_TRUE(ours.ok());
  EXPECT_FALSE(ours.value());
}

}  // namespace
}  // namespace agentkv

#include "http/connection_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace agentkv {

namespace {

void AddressOf(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    port = ntohs(a.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
    ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    port = ntohs(a.sin6_port);
  }
  ip = text;
}

}  // namespace

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  std::string ip;
  int port = 0;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) AddressOf(addr, ip, port);
  return ip;
}

ConnectionStream::ConnectionStream(int fd, int stop_fd, StreamLimits limits)
    : fd_(fd), stop_fd_(stop_fd), limits_(limits) {}

int ConnectionStream::Wait(short events, Clock::time_point until) const {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    const int timeout = static_cast<int>(std::clamp<long long>(left.count(), 0, 1 << 30));
    pollfd fds[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return -1;
    if (n == 0) return 0;
    return 1;  // readable, writable, or an error that the call itself reports
  }
}

bool ConnectionStream::WaitForRequest(std::chrono::milliseconds idle) {
  if (begin_ < end_) return true;  // a pipelined request is already here
  deadline_ = Clock::now() + idle;
  in_head_ = false;
  return Fill();
}

void ConnectionStream::BeginRequest(Clock::time_point deadline) {
  deadline_ = deadline;
  head_bytes_ = body_bytes_ = 0;
  in_head_ = true;
  folded_ = false;
  last_head_byte_ = '\n';
  wrote_ = false;
  fault_ = StreamFault::kNone;
}

bool ConnectionStream::Fill() {
  begin_ = end_ = 0;
  const int ready = Wait(POLLIN, deadline_);
  if (ready <= 0) {
    fault_ = ready == 0 ? StreamFault::kTimedOut : StreamFault::kStopped;
    return false;
  }
  for (;;) {
    const ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    end_ = static_cast<std::size_t>(n);
    return true;
  }
}

void ConnectionStream::DrainUnread(std::chrono::milliseconds time, std::size_t max_bytes) {
  ::shutdown(fd_, SHUT_WR);
  const Clock::time_point until = Clock::now() + time;
  for (std::size_t dropped = 0; dropped < max_bytes && Wait(POLLIN, until) > 0;) {
    const ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), 0);
    if (n <= 0) break;
    dropped += static_cast<std::size_t>(n);
  }
  begin_ = end_ = 0;
}

bool ConnectionStream::is_readable() const {
  return begin_ < end_ || (fault_ == StreamFault::kNone && Wait(POLLIN, deadline_) > 0);
}

bool ConnectionStream::is_writable() const {
  if (Wait(POLLOUT, Clock::now() + limits_.write_timeout) <= 0) return false;
  char probe;  // a client that closed reads as end of stream
  const ssize_t n = ::recv(fd_, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  return n != 0;
}

ssize_t ConnectionStream::read(char* ptr, size_t size) {
  if (fault_ != StreamFault::kNone) return -1;
  std::size_t& used = in_head_ ? head_bytes_ : body_bytes_;
  const std::size_t cap = in_head_ ? limits_.max_head_bytes : limits_.max_raw_body_bytes;
  if (used >= cap) {
    fault_ = in_head_ ? StreamFault::kHeadTooLarge : StreamFault::kBodyTooLarge;
    return -1;
  }
  if (begin_ == end_) {
    if (fault_ == StreamFault::kNone && Clock::now() >= deadline_) {
      fault_ = StreamFault::kTimedOut;
      return -1;
    }
    if (!Fill()) return fault_ == StreamFault::kNone ? 0 : -1;
  }
  const std::size_t n = std::min({size, end_ - begin_, cap - used});
  std::memcpy(ptr, buf_.data() + begin_, n);
  if (in_head_) {
    for (std::size_t i = 0; i < n; ++i) {
      folded_ |= last_head_byte_ == '\n' && (ptr[i] == ' ' || ptr[i] == '\t');
      last_head_byte_ = ptr[i];
    }
  }
  begin_ += n;
  used += n;
  return static_cast<ssize_t>(n);
}

ssize_t ConnectionStream::write(const char* ptr, size_t size) {
  if (Wait(POLLOUT, Clock::now() + limits_.write_timeout) <= 0) return -1;
  for (;;) {
    const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) wrote_ = true;
    return n;
  }
}

void ConnectionStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) AddressOf(addr, ip, port);
}

void ConnectionStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) AddressOf(addr, ip, port);
}

}  // namespace agentkv

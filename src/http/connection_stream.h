#pragma once
// One client connection's socket as an httplib::Stream, with the bounds that
// httplib 0.11's own socket stream lacks:
// - a deadline for a request's head and body together: httplib has only a
//   per-read timeout, so a client that trickles a byte now and then holds
//   the connection for ever;
// - a cap on the bytes of a head, and on the raw bytes of a body (its chunk
//   framing included), so a line without an end cannot grow in memory;
// - a stop descriptor that wakes every blocked read and write when the
//   server stops.
// A fault ends the request: reads fail from then on and fault() says why.
// Used by one thread at a time, the connection's own.

#include <httplib.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <string>

#include "http/connection_limits.h"

namespace agentkv {

enum class StreamFault {
  kNone,
  kHeadTooLarge,  // the head passed max_head_bytes
  kBodyTooLarge,  // the raw body passed max_raw_body_bytes
  kTimedOut,      // the head and body were not in by the deadline
  kStopped,       // the server stops
};

// The address of the peer of socket `fd` ("" if it has none).
std::string PeerAddress(int fd);

class ConnectionStream : public httplib::Stream {
 public:
  using Clock = std::chrono::steady_clock;
  ConnectionStream(int fd, int stop_fd, StreamLimits limits);

  // Waits up to `idle` for the first byte of the next request. False if none
  // came, the client closed, or the server stops.
  bool WaitForRequest(std::chrono::milliseconds idle);
  // A request starts: its head and body must be read by `deadline`.
  void BeginRequest(Clock::time_point deadline);
  // Its head has been parsed: the bytes that follow are its body.
  void EndHead() { in_head_ = false; }
  StreamFault fault() const { return fault_; }
  // Whether a line of this request's head began with a space or a tab: a
  // folded header (obs-fold, RFC 9112 5.2), which a proxy in front may
  // read as one header where httplib reads another.
  bool folded_head() const { return folded_; }
  // Whether any byte of an answer was written for this request.
  bool wrote() const { return wrote_; }
  // Before closing a connection whose request was answered unread: stops
  // writing, then reads and drops what the client still sends, for at most
  // `time` and `max_bytes`. Closing with unread bytes would reset the
  // connection, which can destroy the answer before the client reads it.
  void DrainUnread(std::chrono::milliseconds time, std::size_t max_bytes);

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  int socket() const override { return fd_; }

 private:
  // Polls for `events` on the socket until `until`: 1 ready, 0 timed out,
  // -1 error or the server stops.
  int Wait(short events, Clock::time_point until) const;
  // Reads what the socket has into buf_; false (fault_ set if it applies)
  // if nothing can be read by the deadline.
  bool Fill();

  const int fd_;
  const int stop_fd_;
  const StreamLimits limits_;
  std::array<char, 16384> buf_{};
  std::size_t begin_ = 0, end_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::size_t head_bytes_ = 0, body_bytes_ = 0;
  bool in_head_ = false;
  bool folded_ = false;
  char last_head_byte_ = '\n';
  bool wrote_ = false;
  StreamFault fault_ = StreamFault::kNone;
};

}  // namespace agentkv

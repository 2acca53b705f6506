#pragma once
// The connection layer under agentkv's http front: cpp-httplib's Server with
// its connection handling replaced, so that no client can hold what others
// need. httplib 0.11 serves every connection from one fixed pool of workers
// and bounds a request only by a per-read timeout: 200 clients that send
// half a request line hold 200 workers, and waiting requests hold theirs for
// up to the queue timeout, so /healthz waits behind them. Here:
//
// - One thread per connection (ConnectionThreads, the Server's task queue):
//   a waiting, streaming or stalled request holds its own thread, never one
//   that another connection waits for.
// - A cap on connections overall and per client address. A connection past
//   a cap still gets a thread, from a small reserve, for one request with a
//   short deadline: a control route (/healthz, /readyz, /metrics) is
//   answered, anything else gets 503 at once (OverflowOnly() tells the
//   handlers). Past the reserve too, the accepting thread itself writes the
//   503 and closes, without reading.
// - A deadline for each request's head and body together, a cap on the
//   head's bytes and on the raw body bytes (ConnectionStream); keep-alive
//   limited in idle time and in requests per connection.
//
// How: httplib's accept loop hands each accepted socket to the task queue
// as a call of Server::process_and_close_socket, a virtual that FrontServer
// overrides; it serves the connection with httplib's own request parser and
// router (process_request) over a ConnectionStream. The listening socket,
// the parser and the routes stay httplib's.
//
// Thread-safe as httplib::Server is; Connections() may be called from any
// thread.

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <string>

#include "agentkv/mutex.h"
#include "http/connection_limits.h"
#include "http/connection_stream.h"

namespace agentkv {

// What the handlers of the current request may ask about its connection.
// Only valid on a connection's own thread, inside a handler.
class ConnectionContext {
 public:
  // Null outside a connection thread.
  static ConnectionContext* Current();
  // The connection is past a cap: serve control routes only.
  bool overflow_only() const { return overflow_only_; }
  // Why reading the request failed, if it did.
  StreamFault fault() const { return stream_.fault(); }
  bool folded_head() const { return stream_.folded_head(); }
  // The request's body was not read to its end: the connection cannot carry
  // another request. Also sets Connection: close on the answer.
  void CloseAfterAnswer() { close_after_ = true; }

 private:
  friend class FrontServer;
  ConnectionContext(ConnectionStream& stream, bool overflow_only)
      : stream_(stream), overflow_only_(overflow_only) {}
  ConnectionStream& stream_;
  const bool overflow_only_;
  bool close_after_ = false;
};

class FrontServer : public httplib::Server {
 public:
  explicit FrontServer(ConnectionLimits limits);
  ~FrontServer() override;

  ConnectionCounts Connections() const;

 private:
  class ConnectionThreads;
  // httplib's hook: serves `sock` until it closes, on the thread the task
  // queue gave it (or refuses it on the accepting thread, past the reserve).
  bool process_and_close_socket(int sock) override;
  void Serve(ConnectionStream& stream, ConnectionContext& context);
  // Counts the connection in; false if it is past a cap.
  bool Admit(const std::string& client);
  void Release(const std::string& client, bool admitted);
  // Writes a 503 without reading the request and closes.
  void RefuseNow(int sock);

  const ConnectionLimits limits_;
  const int stop_fd_;  // an eventfd, readable once the server stops
  mutable Mutex mu_;
  int open_ GUARDED_BY(mu_) = 0;
  int overflow_ GUARDED_BY(mu_) = 0;
  std::map<std::string, int> per_client_ GUARDED_BY(mu_);
  std::atomic<long long> refused_{0};
};

}  // namespace agentkv

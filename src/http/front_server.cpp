#include "http/front_server.h"

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <system_error>
#include <thread>
#include <vector>

#include "http/http_errors.h"

namespace agentkv {

namespace {

thread_local ConnectionContext* t_context = nullptr;
// Set while the accepting thread runs a connection's task itself: there is
// no thread left for it, so it is refused at once.
thread_local bool t_refuse_now = false;

// A whole answer for when no request was parsed (or none will be).
std::string BareAnswer(int status, const char* reason, const std::string& message) {
  const std::string body = ErrorJson(status, message);
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + reason +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n";
  if (status == 503) out += "Retry-After: " + std::to_string(kRetryAfterSeconds) + "\r\n";
  return out + "\r\n" + body;
}

}  // namespace

ConnectionContext* ConnectionContext::Current() { return t_context; }

// httplib's task queue: a thread per connection instead of a fixed pool,
// up to a ceiling past which the accepting thread refuses connections itself.
class FrontServer::ConnectionThreads : public httplib::TaskQueue {
 public:
  ConnectionThreads(int stop_fd, std::size_t ceiling) : stop_fd_(stop_fd), ceiling_(ceiling) {}

  void enqueue(std::function<void()> fn) override {
    {
      MutexLock lock(mu_);
      JoinFinishedLocked();
      if (threads_.size() < ceiling_) {
        try {
          std::thread t([this, fn] {
            fn();
            MutexLock done(mu_);
            finished_.push_back(std::this_thread::get_id());
          });
          threads_.emplace(t.get_id(), std::move(t));
          return;
        } catch (const std::system_error&) {  // no thread to be had: refused below
        }
      }
    }
    t_refuse_now = true;
    fn();
    t_refuse_now = false;
  }

  // Wakes every connection (their reads and writes poll the stop
  // descriptor) and waits for their threads.
  void shutdown() override {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
    std::map<std::thread::id, std::thread> all;
    {
      MutexLock lock(mu_);
      all.swap(threads_);
    }
    for (auto& [id, t] : all) t.join();
  }

 private:
  void JoinFinishedLocked() REQUIRES(mu_) {
    for (const std::thread::id& id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      it->second.join();
      threads_.erase(it);
    }
    finished_.clear();
  }

  const int stop_fd_;
  const std::size_t ceiling_;
  Mutex mu_;
  std::map<std::thread::id, std::thread> threads_ GUARDED_BY(mu_);
  std::vector<std::thread::id> finished_ GUARDED_BY(mu_);
};

FrontServer::FrontServer(ConnectionLimits limits)
    : limits_(limits), stop_fd_(::eventfd(0, EFD_CLOEXEC)) {
  const std::size_t ceiling = static_cast<std::size_t>(limits_.max_connections) +
                              static_cast<std::size_t>(limits_.overflow_reserve);
  new_task_queue = [this, ceiling] { return new ConnectionThreads(stop_fd_, ceiling); };
  // What httplib reports in Keep-Alive headers and sets as socket timeouts.
  set_keep_alive_max_count(static_cast<std::size_t>(limits_.keep_alive_max_requests));
  set_keep_alive_timeout(
      std::chrono::duration_cast<std::chrono::seconds>(limits_.keep_alive_timeout).count());
  set_write_timeout(limits_.stream.write_timeout);
  // httplib writes an answer's head and body in separate sends: with Nagle's
  // algorithm the body waits for the client to acknowledge the head, which a
  // client on a kept-alive connection delays by up to 40 ms (a turn through
  // the fake llama-server: 43.9 ms p50 without this, 2.4 ms with it).
  // Accepted sockets inherit the option from the listening one.
  set_tcp_nodelay(true);
}

FrontServer::~FrontServer() { ::close(stop_fd_); }

ConnectionCounts FrontServer::Connections() const {
  MutexLock lock(mu_);
  return ConnectionCounts{open_, overflow_, refused_.load()};
}

bool FrontServer::Admit(const std::string& client) {
  MutexLock lock(mu_);
  int& mine = per_client_[client];
  if (open_ >= limits_.max_connections || mine >= limits_.max_connections_per_client) {
    if (mine == 0) per_client_.erase(client);
    ++overflow_;
    ++refused_;
    return false;
  }
  ++open_;
  ++mine;
  return true;
}

void FrontServer::Release(const std::string& client, bool admitted) {
  MutexLock lock(mu_);
  if (!admitted) {
    --overflow_;
    return;
  }
  --open_;
  if (--per_client_[client] == 0) per_client_.erase(client);
}

void FrontServer::RefuseNow(int sock) {
  ++refused_;  // past the reserve
  const std::string answer =
      BareAnswer(503, "Service Unavailable", "too many connections: retry later");
  [[maybe_unused]] const ssize_t n =
      ::send(sock, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(sock, SHUT_WR);
  // What the client already sent is read, so that closing does not reset
  // the connection before it reads the answer.
  char sink[4096];
  for (int i = 0; i < 16 && ::recv(sock, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
  ::close(sock);
}

bool FrontServer::process_and_close_socket(int sock) {
  if (t_refuse_now) {
    RefuseNow(sock);
    return false;
  }
  const std::string client = PeerAddress(sock);
  const bool admitted = Admit(client);
  {
    ConnectionStream stream(sock, stop_fd_, limits_.stream);
    ConnectionContext context(stream, !admitted);
    t_context = &context;
    Serve(stream, context);
    t_context = nullptr;
  }
  Release(client, admitted);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return true;
}

void FrontServer::Serve(ConnectionStream& stream, ConnectionContext& context) {
  const bool overflow = context.overflow_only();
  const int max_requests = overflow ? 1 : limits_.keep_alive_max_requests;
  const auto timeout = overflow ? std::min(limits_.overflow_timeout, limits_.request_timeout)
                                : limits_.request_timeout;
  const auto idle = overflow ? timeout : limits_.keep_alive_timeout;
  const std::function<void(httplib::Request&)> head_parsed = [&](httplib::Request&) {
    stream.EndHead();
  };
  for (int served = 0; served < max_requests && stream.WaitForRequest(idle); ++served) {
    stream.BeginRequest(ConnectionStream::Clock::now() + timeout);
    bool closed = false;
    const bool ok = process_request(stream, served + 1 == max_requests, closed, head_parsed);
    // A head that never ended gets an answer here; httplib answers one that
    // ended badly itself (the error handler names the fault).
    if (!stream.wrote() && stream.fault() == StreamFault::kHeadTooLarge) {
      const std::string a =
          BareAnswer(431, "Request Header Fields Too Large", "request head is too large");
      stream.write(a.data(), a.size());
    } else if (!stream.wrote() && stream.fault() == StreamFault::kTimedOut) {
      const std::string a = BareAnswer(408, "Request Timeout", "request was not received in time");
      stream.write(a.data(), a.size());
    }
    if (context.close_after_ || stream.fault() == StreamFault::kBodyTooLarge) {
      stream.DrainUnread(std::chrono::seconds(1), 4u << 20);
      break;
    }
    if (!ok || closed || stream.fault() != StreamFault::kNone) break;
  }
}

}  // namespace agentkv

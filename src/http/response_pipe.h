#pragma once
// Carries one upstream response from the thread that reads it from
// llama-server to the thread that writes it to the client, chunk by chunk,
// with no buffering beyond the chunks not yet written, and no more of those
// than a bound: a client that reads more slowly than llama-server writes is
// cut off there (the exchange is abandoned) rather than held for. The
// producer never waits for the consumer, so a slow client cannot hold a
// slot. Thread-safe: one producer, one consumer.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <string>

#include "agentkv/mutex.h"
#include "upstream/upstream.h"

namespace agentkv {

class ResponsePipe {
 public:
  explicit ResponsePipe(std::size_t max_unsent) : max_unsent_(max_unsent) {}

  // Producer. Each returns false once the consumer has gone, or (PutBody)
  // once more than max_unsent bytes would wait for it: then the pipe is
  // abandoned and overflowed() is true.
  bool PutHeaders(int status, HeaderList headers);
  bool PutBody(const char* data, size_t size);
  // The exchange ended: OK after the whole body, else why it stopped.
  void Finish(Status status);

  // Consumer. Blocks until the headers arrived (true) or the exchange ended
  // without them (false; see final_status()).
  bool WaitHeaders(int* status, HeaderList* headers);
  // Blocks until a chunk is ready (true) or the body is complete (false).
  bool NextChunk(std::string* chunk);
  // Valid once WaitHeaders or NextChunk returned false; kTimeout once
  // overflowed().
  Status final_status() const;
  // The client is gone: stop the upstream exchange.
  void Abandon();
  // True once PutBody found the client too slow; unsent() bytes waited.
  bool overflowed() const;
  std::size_t unsent() const;

  CancelToken& cancel_token() { return cancel_; }

 private:
  mutable Mutex mu_;
  std::condition_variable_any changed_;
  bool has_headers_ GUARDED_BY(mu_) = false;
  int status_ GUARDED_BY(mu_) = 0;
  HeaderList headers_ GUARDED_BY(mu_);
  const std::size_t max_unsent_;
  std::deque<std::string> chunks_ GUARDED_BY(mu_);
  std::size_t unsent_ GUARDED_BY(mu_) = 0;
  bool overflowed_ GUARDED_BY(mu_) = false;
  bool finished_ GUARDED_BY(mu_) = false;
  bool abandoned_ GUARDED_BY(mu_) = false;
  Status final_ GUARDED_BY(mu_);
  CancelToken cancel_;
};

}  // namespace agentkv

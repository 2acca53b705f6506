#pragma once
// Carries one upstream response from the thread that reads it from
// llama-server to the thread that writes it to the client, chunk by chunk,
// with no buffering beyond the chunks not yet written. Thread-safe: one
// producer, one consumer.

#include <condition_variable>
#include <deque>
#include <string>

#include "agentkv/mutex.h"
#include "upstream/upstream.h"

namespace agentkv {

class ResponsePipe {
 public:
  // Producer. Each returns false once the consumer has gone.
  bool PutHeaders(int status, HeaderList headers);
  bool PutBody(const char* data, size_t size);
  // The exchange ended: OK after the whole body, else why it stopped.
  void Finish(Status status);

  // Consumer. Blocks until the headers arrived (true) or the exchange ended
  // without them (false; see final_status()).
  bool WaitHeaders(int* status, HeaderList* headers);
  // Blocks until a chunk is ready (true) or the body is complete (false).
  bool NextChunk(std::string* chunk);
  // Valid once WaitHeaders or NextChunk returned false.
  Status final_status() const;
  // The client is gone: stop the upstream exchange.
  void Abandon();

  CancelToken& cancel_token() { return cancel_; }

 private:
  mutable Mutex mu_;
  std::condition_variable_any changed_;
  bool has_headers_ GUARDED_BY(mu_) = false;
  int status_ GUARDED_BY(mu_) = 0;
  HeaderList headers_ GUARDED_BY(mu_);
  std::deque<std::string> chunks_ GUARDED_BY(mu_);
  bool finished_ GUARDED_BY(mu_) = false;
  bool abandoned_ GUARDED_BY(mu_) = false;
  Status final_ GUARDED_BY(mu_);
  CancelToken cancel_;
};

}  // namespace agentkv

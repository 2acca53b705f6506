#pragma once
// Carries one upstream response from the thread that reads it from
// llama-server to the thread that writes it to the client, chunk by chunk,
// with no buffering beyond the chunks not yet written. Thread-safe: one
// producer, one consumer.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

#include "agentkv/upstream.h"

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
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool has_headers_ = false;        // guarded by mu_
  int status_ = 0;                  // guarded by mu_
  HeaderList headers_;              // guarded by mu_
  std::deque<std::string> chunks_;  // guarded by mu_
  bool finished_ = false;           // guarded by mu_
  bool abandoned_ = false;          // guarded by mu_
  Status final_;                    // guarded by mu_
  CancelToken cancel_;
};

}  // namespace agentkv

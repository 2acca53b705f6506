#include "http/response_pipe.h"

namespace agentkv {

bool ResponsePipe::PutHeaders(int status, HeaderList headers) {
  {
    MutexLock lock(mu_);
    if (abandoned_) return false;
    has_headers_ = true;
    status_ = status;
    headers_ = std::move(headers);
  }
  changed_.notify_all();
  return true;
}

bool ResponsePipe::PutBody(const char* data, size_t size) {
  {
    MutexLock lock(mu_);
    if (abandoned_) return false;
    chunks_.emplace_back(data, size);
  }
  changed_.notify_all();
  return true;
}

void ResponsePipe::Finish(Status status) {
  {
    MutexLock lock(mu_);
    finished_ = true;
    final_ = std::move(status);
  }
  changed_.notify_all();
}

bool ResponsePipe::WaitHeaders(int* status, HeaderList* headers) {
  MutexLock lock(mu_);
  changed_.wait(lock, [&]() REQUIRES(mu_) { return has_headers_ || finished_; });
  if (!has_headers_) return false;
  *status = status_;
  *headers = headers_;
  return true;
}

bool ResponsePipe::NextChunk(std::string* chunk) {
  MutexLock lock(mu_);
  changed_.wait(lock, [&]() REQUIRES(mu_) { return !chunks_.empty() || finished_; });
  if (chunks_.empty()) return false;
  *chunk = std::move(chunks_.front());
  chunks_.pop_front();
  return true;
}

Status ResponsePipe::final_status() const {
  MutexLock lock(mu_);
  return final_;
}

void ResponsePipe::Abandon() {
  {
    MutexLock lock(mu_);
    abandoned_ = true;
  }
  cancel_.Cancel();
  changed_.notify_all();
}

}  // namespace agentkv

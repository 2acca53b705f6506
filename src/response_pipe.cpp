#include "response_pipe.h"

namespace agentkv {

bool ResponsePipe::PutHeaders(int status, HeaderList headers) {
  {
    std::lock_guard<std::mutex> lock(mu_);
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
    std::lock_guard<std::mutex> lock(mu_);
    if (abandoned_) return false;
    chunks_.emplace_back(data, size);
  }
  changed_.notify_all();
  return true;
}

void ResponsePipe::Finish(Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    final_ = std::move(status);
  }
  changed_.notify_all();
}

bool ResponsePipe::WaitHeaders(int* status, HeaderList* headers) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return has_headers_ || finished_; });
  if (!has_headers_) return false;
  *status = status_;
  *headers = headers_;
  return true;
}

bool ResponsePipe::NextChunk(std::string* chunk) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return !chunks_.empty() || finished_; });
  if (chunks_.empty()) return false;
  *chunk = std::move(chunks_.front());
  chunks_.pop_front();
  return true;
}

Status ResponsePipe::final_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return final_;
}

void ResponsePipe::Abandon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    abandoned_ = true;
  }
  cancel_.Cancel();
  changed_.notify_all();
}

}  // namespace agentkv

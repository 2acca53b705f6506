#include "http/response_pipe.h"

#include <algorithm>

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
    if (size <= max_unsent_ - std::min(unsent_, max_unsent_)) {
      chunks_.emplace_back(data, size);
      unsent_ += size;
      changed_.notify_all();
      return true;
    }
    overflowed_ = true;
    abandoned_ = true;
    chunks_.clear();  // the client will not see them: free them now
  }
  cancel_.Cancel();
  changed_.notify_all();
  return false;
}

bool ResponsePipe::overflowed() const {
  MutexLock lock(mu_);
  return overflowed_;
}

std::size_t ResponsePipe::unsent() const {
  MutexLock lock(mu_);
  return unsent_;
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
  changed_.wait(lock, [&]() REQUIRES(mu_) { return !chunks_.empty() || finished_ || overflowed_; });
  if (chunks_.empty()) return false;
  *chunk = std::move(chunks_.front());
  chunks_.pop_front();
  unsent_ -= chunk->size();
  return true;
}

Status ResponsePipe::final_status() const {
  MutexLock lock(mu_);
  if (overflowed_) {
    return Status::Error(ErrorCode::kTimeout, "the client read the answer too slowly");
  }
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

#pragma once
// Errors as values. The core never throws; exceptions stop at the HTTP/JSON
// boundary. Each error carries a code that the http front maps to a status
// code in exactly one place (src/http/http_errors.cpp).

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace agentkv {

enum class ErrorCode {
  kOk,
  kInvalidArgument,   // the client sent something we reject (400)
  kTooLarge,          // body over the configured limit (413)
  kHeadTooLarge,      // request head over its limits (431)
  kTimeout,           // the client took too long to send its request (408)
  kUnsupportedMedia,  // a body type or encoding the route does not take (415)
  kUnauthorized,      // missing or wrong API key (401)
  kNotFound,          // unknown route or object (404)
  kForbidden,         // a path agentkv owns, e.g. slot actions (403)
  kConflict,          // the request clashes with the current state (409)
  kUnsupported,       // agentkv cannot serve this route (501)
  kBusy,              // no slot within the wait bounds (503 + Retry-After)
  kRateLimited,       // over a per-key rate (429 + Retry-After)
  kUnavailable,       // llama-server is down or not ready yet (503 + Retry-After)
  kUpstreamDown,      // llama-server unreachable (502)
  kUpstreamTimeout,   // llama-server did not answer in time (504)
  kUpstreamError,     // llama-server answered an action with an error (502)
  kIo,                // local file system failure (500)
  kInternal,          // a bug: fail loudly (500)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(ErrorCode code, std::string message) {
    return Status(code, std::move(message));
  }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// Holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT(implicit)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(implicit)

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace agentkv

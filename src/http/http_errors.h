#pragma once
// The one place that maps agentkv errors to HTTP. Bodies follow the OpenAI
// error shape llama-server also uses: {"error":{"code","message","type"}}.

#include <string>

#include "agentkv/status.h"

namespace agentkv {

int HttpStatusFor(ErrorCode code);
// Never throws: bytes of `message` that are not UTF-8 become U+FFFD.
std::string ErrorJson(int http_status, const std::string& message);
inline std::string ErrorJson(const Status& s) {
  return ErrorJson(HttpStatusFor(s.code()), s.message());
}
// Seconds a client should wait before retrying a 503 (kBusy, kUnavailable).
constexpr int kRetryAfterSeconds = 2;

}  // namespace agentkv

#include "http/http_errors.h"

#include <nlohmann/json.hpp>

namespace agentkv {

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kHeadTooLarge:
      return 431;
    case ErrorCode::kTimeout:
      return 408;
    case ErrorCode::kUnsupportedMedia:
      return 415;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kUnsupported:
      return 501;
    case ErrorCode::kBusy:
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kRateLimited:
      return 429;
    case ErrorCode::kUpstreamDown:
    case ErrorCode::kUpstreamError:
      return 502;
    case ErrorCode::kUpstreamTimeout:
      return 504;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

namespace {
const char* TypeFor(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 409:
      return "conflict_error";
    case 408:
      return "request_timeout";
    case 413:
      return "request_too_large";
    case 415:
      return "unsupported_media_type";
    case 431:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 501:
      return "not_supported_error";
    case 503:
      return "unavailable_error";
    case 502:
    case 504:
      return "upstream_error";
    default:
      return "server_error";
  }
}
}  // namespace

std::string ErrorJson(int http_status, const std::string& message) {
  nlohmann::json j = {
      {"error", {{"code", http_status}, {"message", message}, {"type", TypeFor(http_status)}}}};
  // Messages quote what the client sent (a method, a path, a header), which
  // need not be UTF-8: strict dump() would throw, and from httplib's
  // Expect: 100-continue handler nothing catches it (std::terminate).
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace agentkv

#include "http/request_limits.h"

#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace agentkv {

namespace {

Status Error(ErrorCode code, std::string message) {
  return Status::Error(code, std::move(message));
}

// httplib adds these to every request's headers itself.
bool IsPseudoHeader(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

// Headers agentkv (or llama-server behind it) reads as one value. Two of
// one are ambiguous: a proxy in front may have checked the other (two
// X-Agent-Id, two keys), or the two ends may frame the body differently
// (two Content-Length). httplib's lookups take the first.
constexpr const char* kSingleHeaders[] = {
    "Host",          "Content-Length", "Transfer-Encoding", "Content-Type",     "Content-Encoding",
    "Authorization", "X-Api-Key",      "X-Agent-Id",        "X-Agentkv-Parent", "Origin",
    "X-Agent-Next",
};

bool ContentTypeIs(const httplib::Request& req, const char* prefix) {
  std::string type = req.get_header_value("Content-Type");
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type.rfind(prefix, 0) == 0;
}

}  // namespace

bool AnnouncesBody(const httplib::Request& req) {
  if (req.has_header("Transfer-Encoding")) return true;
  const std::string length = req.get_header_value("Content-Length");
  return !length.empty() && length.find_first_not_of('0') != std::string::npos;
}

Status CheckHead(const httplib::Request& req, const RequestLimits& limits) {
  const std::size_t fields = static_cast<std::size_t>(
      std::count_if(req.headers.begin(), req.headers.end(),
                    [](const auto& h) { return !IsPseudoHeader(h.first); }));
  if (fields > limits.max_headers) {
    return Error(ErrorCode::kHeadTooLarge, "request has " + std::to_string(fields) +
                                               " header fields, more than the " +
                                               std::to_string(limits.max_headers) + " accepted");
  }
  // A NUL would cut a value short where it is read as a C string (an agent
  // id "a\0b" served as agent "a"); no control byte has a meaning in a
  // header (HTTP allows tab only).
  for (const auto& [name, value] : req.headers) {
    const bool control = std::any_of(value.begin(), value.end(), [](unsigned char c) {
      return (c < 0x20 && c != '\t') || c == 0x7f;
    });
    if (control) {
      return Error(ErrorCode::kInvalidArgument, "header " + name + " holds a control character");
    }
  }
  for (const char* name : kSingleHeaders) {
    if (req.headers.count(name) > 1) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string("header ") + name + " appears more than once");
    }
  }
  const std::string& m = req.method;
  const bool has_body_method = m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE";
  if (!has_body_method && m != "GET" && m != "HEAD" && m != "OPTIONS") {
    return Error(ErrorCode::kUnsupported, "method " + m + " is not supported");
  }
  if (!AnnouncesBody(req)) return Status::Ok();
  if (!has_body_method) {
    return Error(ErrorCode::kInvalidArgument, "a " + m + " request cannot carry a body");
  }
  const bool chunked = req.has_header("Transfer-Encoding");
  if (chunked && req.get_header_value("Transfer-Encoding") != "chunked") {
    return Error(ErrorCode::kInvalidArgument,
                 "Transfer-Encoding other than chunked is not accepted");
  }
  if (chunked && req.has_header("Content-Length")) {
    return Error(ErrorCode::kInvalidArgument,
                 "a request cannot have both Transfer-Encoding and Content-Length");
  }
  if (chunked && m == "DELETE") {
    return Error(ErrorCode::kInvalidArgument, "a DELETE body needs a Content-Length");
  }
  if (!chunked) {
    const std::string length = req.get_header_value("Content-Length");
    // Digits only (RFC 9110): strtoull alone takes "+59" and " 59", which a
    // proxy in front may frame otherwise.
    if (length.empty() || length.size() > 19 ||
        length.find_first_not_of("0123456789") != std::string::npos) {
      return Error(ErrorCode::kInvalidArgument, "Content-Length is not a number");
    }
    const unsigned long long n = std::strtoull(length.c_str(), nullptr, 10);
    if (n > limits.max_body_bytes) {
      return Error(ErrorCode::kTooLarge, "request body exceeds the configured limit of " +
                                             std::to_string(limits.max_body_bytes) + " bytes");
    }
  }
  // httplib decodes exactly these (its build links zlib and brotli); any
  // other coding would reach llama-server undecoded.
  const std::string coding = req.get_header_value("Content-Encoding");
  if (req.has_header("Content-Encoding") && coding != "gzip" && coding != "deflate" &&
      coding != "br" && coding != "identity") {
    return Error(ErrorCode::kUnsupportedMedia,
                 "Content-Encoding " + coding + " is not supported: use gzip, deflate or br");
  }
  // httplib would parse a multipart body into parts in memory; no route
  // agentkv serves takes one.
  if (ContentTypeIs(req, "multipart/")) {
    return Error(ErrorCode::kUnsupportedMedia, "multipart request bodies are not supported");
  }
  return Status::Ok();
}

namespace {

// Counts values and depth as the parser reports them, and stops it at the
// first bound passed.
class ShapeCounter : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit ShapeCounter(const RequestLimits& limits) : limits_(limits) {}

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool key(string_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(); }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    error_ = Error(ErrorCode::kInvalidArgument,
                   "request body is not valid JSON (at byte " + std::to_string(position) + ")");
    return false;
  }

  Status result() const { return error_; }

 private:
  bool Value() {
    if (++values_ <= limits_.max_json_values) return true;
    error_ =
        Error(ErrorCode::kTooLarge, "request body holds more than " +
                                        std::to_string(limits_.max_json_values) + " JSON values");
    return false;
  }
  bool Open() {
    if (++depth_ > limits_.max_json_depth) {
      error_ = Error(ErrorCode::kInvalidArgument, "request body has JSON nesting deeper than " +
                                                      std::to_string(limits_.max_json_depth) +
                                                      " levels");
      return false;
    }
    return Value();
  }
  bool Close() {
    --depth_;
    return true;
  }

  const RequestLimits& limits_;
  std::size_t values_ = 0;
  int depth_ = 0;
  Status error_;
};

}  // namespace

Status CheckJsonShape(std::string_view json, const RequestLimits& limits) {
  ShapeCounter counter(limits);
  nlohmann::json::sax_parse(json.begin(), json.end(), &counter);
  return counter.result();
}

}  // namespace agentkv

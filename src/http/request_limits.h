#pragma once
// Bounds on what one request may make agentkv hold in memory, checked in the
// order the bytes arrive: the head as soon as it is parsed (before any body
// byte is read), the body while it is read (counted after decoding, refused
// at the limit before it is all buffered), the shape of a JSON body (its
// nesting and its number of values) before any DOM of it is built. Pure
// functions of their arguments, thread-safe; ReadBody blocks on the
// client's socket.

#include <cstddef>
#include <string>
#include <string_view>

#include "agentkv/status.h"

namespace httplib {
struct Request;
}  // namespace httplib

namespace agentkv {

struct RequestLimits {
  std::size_t max_body_bytes = 16u << 20;  // after decoding
  std::size_t max_headers = 100;           // header fields, not counting httplib's own
  int max_json_depth = 128;                // nested arrays and objects
  // Values in a JSON body, object keys included: a DOM costs 16 to 100
  // bytes a value, so a flat body of small numbers would cost 30 times its
  // size. 262144 holds a prompt of 256K token ids.
  std::size_t max_json_values = 262144;
};

// What the head alone tells. Returns kHeadTooLarge (too many header
// fields), kTooLarge (a Content-Length over the limit), kUnsupportedMedia (a
// Content-Encoding httplib does not decode, or a multipart body: agentkv
// forwards bodies as they are), kUnsupported (a method agentkv does not
// serve) or kInvalidArgument (what agentkv will not guess at: a body on
// GET, HEAD or OPTIONS, Transfer-Encoding other than chunked, or with a
// Content-Length as well; a header it reads as one value, such as Host,
// Content-Length, Authorization or X-Agent-Id, given twice).
Status CheckHead(const httplib::Request& req, const RequestLimits& limits);

// True if the request announces a body (Content-Length > 0 or a
// Transfer-Encoding): a connection that answers without reading it cannot
// be reused.
bool AnnouncesBody(const httplib::Request& req);

// Reads the body through `read` (httplib's ContentReader, which decodes
// gzip, deflate and br) into *body, counting the decoded bytes as they
// arrive. Returns kTooLarge as soon as they pass `max_bytes`, before the
// rest is read; kInvalidArgument if the body ended early or was malformed.
template <typename ContentReader>
Status ReadBody(const ContentReader& read, std::size_t max_bytes, std::string* body);

// One streaming pass over `json` that builds nothing (its memory does not
// grow with the body): kInvalidArgument if it is not JSON, or "... nesting
// deeper than N ..." if arrays and objects nest deeper than
// limits.max_json_depth; kTooLarge "... more than N values ..." if it
// holds more than limits.max_json_values values (object keys counted).
Status CheckJsonShape(std::string_view json, const RequestLimits& limits);

template <typename ContentReader>
Status ReadBody(const ContentReader& read, std::size_t max_bytes, std::string* body) {
  bool over = false;
  const bool complete = read([&](const char* data, std::size_t n) {
    if (n > max_bytes - body->size()) {
      over = true;
      return false;
    }
    body->append(data, n);
    return true;
  });
  if (over) {
    return Status::Error(ErrorCode::kTooLarge, "request body exceeds the configured limit of " +
                                                   std::to_string(max_bytes) + " bytes");
  }
  if (!complete) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "request body is incomplete or its encoding is malformed");
  }
  return Status::Ok();
}

}  // namespace agentkv

#pragma once
// strerror is not thread-safe; this is.

#include <cstring>
#include <string>

namespace agentkv {

inline std::string ErrnoText(int err) {
  char buf[256];
  return ::strerror_r(err, buf, sizeof buf);  // the GNU variant returns the text
}

}  // namespace agentkv

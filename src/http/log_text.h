#pragma once
// Text from clients on its way into the log. A raw CR, LF or ESC in a
// request target would let a client end a log line and forge the next one,
// or drive the terminal that shows it.

#include <cstdio>
#include <string>
#include <string_view>

namespace agentkv {

// `text` with every control character (below 0x20, and DEL) written as
// \xNN, and backslashes doubled so that the escape cannot be forged either.
inline std::string EscapeForLog(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace agentkv

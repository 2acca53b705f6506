#include "http/next_hint.h"

#include <cctype>
#include <cstdlib>

namespace agentkv {

Result<std::optional<NextHint>> ParseNextHint(const std::string& value) {
  const std::size_t first = value.find_first_not_of(" \t");
  if (first == std::string::npos) return std::optional<NextHint>();
  const std::string v = value.substr(first, value.find_last_not_of(" \t") + 1 - first);
  if (v == "tool") return std::optional<NextHint>(NextHint{NextHint::Kind::kTool, 0});
  if (v == "done") return std::optional<NextHint>(NextHint{NextHint::Kind::kDone, 0});
  int dots = 0;
  bool digits = !v.empty() && v.size() <= 16 && v.front() != '.' && v.back() != '.';
  for (char c : v) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      digits = false;
    }
  }
  const double seconds = digits && dots <= 1 ? std::strtod(v.c_str(), nullptr) : -1;
  if (seconds < 0 || seconds > kMaxNextSeconds) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         std::string(kNextHeader) +
                             " must be tool, done, or the seconds until the agent's next "
                             "request (0 to 604800)");
  }
  return std::optional<NextHint>(NextHint{NextHint::Kind::kSeconds, seconds});
}

}  // namespace agentkv

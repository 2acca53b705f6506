#pragma once
// Token counts agentkv may not know: a request cut short reports nothing,
// and metadata of an older version may hold a negative count for "unknown".

#include <cstdint>
#include <optional>

namespace agentkv {

using TokenCount = std::optional<long long>;

// The count if it is known and not negative: a size computed from it can
// never come out negative.
inline std::optional<std::uint64_t> KnownTokens(TokenCount count) {
  if (!count || *count < 0) return std::nullopt;
  return static_cast<std::uint64_t>(*count);
}

}  // namespace agentkv

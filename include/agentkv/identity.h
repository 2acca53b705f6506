#pragma once
// Resolves whom a request runs for. The first source present wins:
// 1. the /agents/{id}/ path prefix, 2. the X-Agent-Id header,
// 3. the body's "prompt_cache_key", 4. the body's "user".
// None present: a stateless request. Pure function, thread-safe.

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "agentkv/residency.h"

namespace agentkv {

// Returns kInvalidArgument, naming the source, if the winning id is invalid
// or a body field is not a string. `body` may be null (no JSON body).
Result<Tenant> ResolveTenant(const std::optional<std::string>& path_agent,
                             const std::optional<std::string>& header_agent,
                             const nlohmann::json* body);

}  // namespace agentkv

#pragma once
// Resolves whom a request runs for. The first source present wins:
// 1. the /agents/{id}/ path prefix, 2. the X-Agent-Id header,
// 3. the body's "prompt_cache_key", 4. the body's "user".
// None present: a stateless request. Pure function, thread-safe.

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "agentkv/agent_id.h"

namespace agentkv {

// The id of an /agents/{id}/ prefix (a client id), or of an /admin/ route
// when `admin` (a client id, or one in a key's namespace: "<id>@<ns>");
// returns kInvalidArgument naming the path on bad input.
Result<AgentId> ParsePathAgent(const std::string& id, bool admin = false);

// `path_agent` comes validated (see ParsePathAgent). Returns
// kInvalidArgument, naming the source, if the winning id is invalid or a
// body field is not a string. `body` may be null (no JSON body).
Result<Tenant> ResolveTenant(const std::optional<AgentId>& path_agent,
                             const std::optional<std::string>& header_agent,
                             const nlohmann::json* body);

}  // namespace agentkv

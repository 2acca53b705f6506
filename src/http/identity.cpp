#include "http/identity.h"

#include <nlohmann/json.hpp>

namespace agentkv {

namespace {

Result<Tenant> Validate(const std::string& id, const std::string& source) {
  Result<AgentId> agent = AgentId::Parse(id);
  if (!agent.ok()) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "invalid agent id in " + source + ": " + agent.status().message());
  }
  return Tenant(agent.value());
}

}  // namespace

Result<AgentId> ParsePathAgent(const std::string& id, bool admin) {
  Result<AgentId> agent = admin ? AgentId::ParseQualified(id) : AgentId::Parse(id);
  if (agent.ok()) return agent;
  return Status::Error(ErrorCode::kInvalidArgument,
                       "invalid agent id in the request path: " + agent.status().message());
}

Result<Tenant> ResolveTenant(const std::optional<AgentId>& path_agent,
                             const std::optional<std::string>& header_agent,
                             const nlohmann::json* body) {
  if (path_agent) return Tenant(*path_agent);
  if (header_agent) return Validate(*header_agent, "the X-Agent-Id header");
  if (body && body->is_object()) {
    for (const char* field : {"prompt_cache_key", "user"}) {
      auto it = body->find(field);
      if (it == body->end() || it->is_null()) continue;
      const std::string source = std::string("the \"") + field + "\" field";
      if (!it->is_string()) {
        return Status::Error(ErrorCode::kInvalidArgument, source + " must be a string");
      }
      return Validate(it->get<std::string>(), source);
    }
  }
  return Tenant();
}

}  // namespace agentkv

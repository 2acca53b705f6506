#include "agentkv/agent_id.h"

#include <stdexcept>

namespace agentkv {

namespace {
bool IsAllowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
}  // namespace

Result<AgentId> AgentId::Parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxLength) {
    return Status::Error(ErrorCode::kInvalidArgument, "agent id must be 1 to 128 characters long");
  }
  for (char c : text) {
    if (!IsAllowed(c)) {
      return Status::Error(ErrorCode::kInvalidArgument,
                           "agent id may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return AgentId(std::string(text));
}

AgentId AgentId::Internal(std::string_view name) {
  Result<AgentId> id = Parse(name);
  if (!id.ok() || name.size() + 1 > kMaxLength) {
    throw std::invalid_argument("bad internal agent id: " + std::string(name));
  }
  return AgentId("~" + std::string(name));
}

Result<AgentId> AgentId::ParseStored(std::string_view text) {
  if (!text.empty() && text[0] == '~') {
    Result<AgentId> name = Parse(text.substr(1));
    if (!name.ok()) return name.status();
    return AgentId(std::string(text));
  }
  return Parse(text);
}

}  // namespace agentkv

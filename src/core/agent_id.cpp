#include "agentkv/agent_id.h"

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

}  // namespace agentkv

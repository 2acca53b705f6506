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

namespace {
constexpr std::size_t kMaxNamespace = 16;
bool IsNamespace(std::string_view ns) {
  if (ns.empty() || ns.size() > kMaxNamespace) return false;
  for (char c : ns) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}
}  // namespace

AgentId AgentId::InNamespace(const AgentId& id, std::string_view ns) {
  if (!IsNamespace(ns) || id.internal()) {
    throw std::invalid_argument("bad agent namespace: " + std::string(ns));
  }
  return AgentId(id.value_ + "@" + std::string(ns));
}

Result<AgentId> AgentId::ParseQualified(std::string_view text) {
  const std::size_t at = text.rfind('@');
  if (at == std::string_view::npos) return Parse(text);
  Result<AgentId> name = Parse(text.substr(0, at));
  if (!name.ok()) return name.status();
  if (!IsNamespace(text.substr(at + 1))) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "an agent id's namespace (after '@') is 1 to 16 of [0-9a-z]");
  }
  return AgentId(std::string(text));
}

Result<AgentId> AgentId::ParseStored(std::string_view text) {
  if (!text.empty() && text[0] == '~') {
    Result<AgentId> name = Parse(text.substr(1));
    if (!name.ok()) return name.status();
    return AgentId(std::string(text));
  }
  return ParseQualified(text);
}

}  // namespace agentkv

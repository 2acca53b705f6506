#pragma once
// Identity types. An AgentId is validated once, at the edge, and is then
// trusted everywhere: 1..128 characters of [A-Za-z0-9._-].

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agentkv/status.h"

namespace agentkv {

class AgentId {
 public:
  static constexpr std::size_t kMaxLength = 128;

  // Returns kInvalidArgument with a message naming the rule on bad input.
  static Result<AgentId> Parse(std::string_view text);
  // Memory agentkv keeps for itself (prefix snapshots): "~" + `name`, where
  // `name` follows the client rule. No client can name one: Parse refuses
  // the "~". Throws std::invalid_argument on a bad name (a bug).
  static AgentId Internal(std::string_view name);
  // Client id `id` in the namespace of one API key: "<id>@<ns>", where `ns`
  // is 1..16 characters of [0-9a-z] (a scope, see Prefixes::ScopeOf). The
  // same client id under two keys is two agents. No client can name one
  // directly: Parse refuses the "@". Throws std::invalid_argument on a bad
  // `ns` (a bug).
  static AgentId InNamespace(const AgentId& id, std::string_view ns);
  // A client id, or one in a namespace: what the admin API may name.
  static Result<AgentId> ParseQualified(std::string_view text);
  // What a metadata file may hold: a client id, one in a namespace, or an
  // internal one.
  static Result<AgentId> ParseStored(std::string_view text);
  bool internal() const { return !value_.empty() && value_[0] == '~'; }
  // The namespace of an id made by InNamespace ("" for any other id).
  std::string_view ns() const {
    const std::size_t at = value_.rfind('@');
    return at == std::string::npos ? std::string_view() : std::string_view(value_).substr(at + 1);
  }

  const std::string& str() const { return value_; }
  // For logs: at most 16 characters, so long ids (which may carry user
  // names or session keys) are never written out whole.
  std::string ForLog() const { return value_.size() <= 16 ? value_ : value_.substr(0, 15) + "~"; }
  bool operator==(const AgentId& other) const { return value_ == other.value_; }
  bool operator!=(const AgentId& other) const { return value_ != other.value_; }
  bool operator<(const AgentId& other) const { return value_ < other.value_; }

 private:
  explicit AgentId(std::string value) : value_(std::move(value)) {}
  std::string value_;
};

// Whom a request runs for: an agent, or nobody (a stateless request).
using Tenant = std::optional<AgentId>;

// A llama-server slot index, 0..N-1.
struct SlotId {
  int value = -1;
  bool operator==(const SlotId& other) const { return value == other.value; }
  bool operator!=(const SlotId& other) const { return value != other.value; }
};

}  // namespace agentkv

template <>
struct std::hash<agentkv::AgentId> {
  std::size_t operator()(const agentkv::AgentId& id) const noexcept {
    return std::hash<std::string>()(id.str());
  }
};

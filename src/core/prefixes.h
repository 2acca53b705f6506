#pragma once
// Prefix snapshots: which saved prefix a new agent starts from, and which
// prefix is worth a snapshot of its own. Decides only; the proxy tokenizes,
// prefills and saves. Thread-safe.
//
// A snapshot holds the KV of tokens that two agents of one scope (one API
// key, or everyone when there are none) both sent at the start of their
// prompts: the longest common prefix of their token ids, if at least
// `min_tokens` long. An agent starts from a snapshot of its own scope only
// if every token of the snapshot is a token it sent itself, at the same
// place, so a snapshot never shows an agent anything it did not send, and
// no scope ever sees another's. Snapshots are ordinary memory files under
// internal agent ids that carry their scope, length and token hash, so the
// store's index is the list of snapshots, across restarts too.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/mutex.h"

namespace agentkv {

using Tokens = std::vector<std::int32_t>;

// What an internal snapshot id says of its snapshot.
struct SnapshotKey {
  std::string scope;
  std::size_t length = 0;  // tokens
  std::uint64_t hash = 0;  // of those token ids
};

// What a new agent's request should do about prefixes.
struct PrefixChoice {
  std::optional<AgentId> start_from;  // the longest snapshot it may start from
  std::size_t start_tokens = 0;
  // A new snapshot to write first: the request's first `build_tokens` tokens.
  std::optional<AgentId> build;
  std::size_t build_tokens = 0;
  // The agent seen before whose prompt shares those tokens: its memory, if
  // it has any, holds their KV (see PrefixPath::Build).
  std::optional<AgentId> build_source;
};

class Prefixes {
 public:
  // Remembers the tokens of the last `max_seen` new agents to find shared
  // prefixes in (their token ids only, in memory).
  explicit Prefixes(std::size_t min_tokens, std::size_t max_seen = 32)
      : min_tokens_(min_tokens), max_seen_(max_seen) {}

  // The scope of requests made with `api_key` ("" when agentkv has no keys):
  // a hash of the key, never the key itself.
  static std::string ScopeOf(const std::string& api_key);
  // The scope of the keys of a tenant (see AuthPolicy::tenants): a hash of
  // its name, or "@<scope>" for a scope as the admin API shows it (a key's
  // own, kept when the key is replaced). Valid tenants: see ValidTenant.
  static std::string ScopeOfTenant(const std::string& tenant);
  // 1 to 64 of [A-Za-z0-9._-], or "@" and a scope (16 of [0-9a-f]).
  static bool ValidTenant(const std::string& tenant);
  // The internal id of a snapshot of `tokens`' first `length` tokens.
  static AgentId SnapshotId(const std::string& scope, const Tokens& tokens, std::size_t length);
  // nullopt if `id` is not a snapshot's.
  static std::optional<SnapshotKey> Parse(const AgentId& id);

  // For new agent `agent` of `scope` whose prompt is `tokens`, given the
  // ids of the snapshots that exist: where it starts, and whether its
  // request builds a longer snapshot first (shared with another agent seen
  // before, and at least min_tokens longer than where it starts). Remembers
  // `tokens`.
  PrefixChoice Choose(const std::string& scope, const AgentId& agent, const Tokens& tokens,
                      const std::vector<AgentId>& snapshots);

  std::size_t min_tokens() const { return min_tokens_; }

 private:
  struct Seen {
    std::string scope;
    AgentId agent;
    Tokens tokens;
  };

  const std::size_t min_tokens_;
  const std::size_t max_seen_;
  Mutex mu_;
  std::deque<Seen> seen_ GUARDED_BY(mu_);  // newest first
};

}  // namespace agentkv

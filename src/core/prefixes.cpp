#include "core/prefixes.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "store/checksum.h"
#include "store/sha256.h"

namespace agentkv {

namespace {

constexpr char kTag[] = "prefix.";
constexpr std::size_t kHashHex = 16;

std::uint64_t HashOf(const Tokens& tokens, std::size_t length) {
  return Xxh64(tokens.data(), length * sizeof(std::int32_t));
}

std::string Hex(std::uint64_t v) {
  char buf[kHashHex + 1];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::size_t CommonPrefix(const Tokens& a, const Tokens& b) {
  const std::size_t n = std::min(a.size(), b.size());
  std::size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

std::string Prefixes::ScopeOf(const std::string& api_key) {
  if (api_key.empty()) return "open";
  return Sha256Hex("agentkv prefix scope\n" + api_key).substr(0, kHashHex);
}

std::string Prefixes::ScopeOfTenant(const std::string& tenant) {
  if (tenant.rfind('@', 0) == 0) return tenant.substr(1);
  return Sha256Hex("agentkv tenant scope\n" + tenant).substr(0, kHashHex);
}

bool Prefixes::ValidTenant(const std::string& tenant) {
  if (tenant.rfind('@', 0) == 0) {
    return tenant.size() == kHashHex + 1 &&
           tenant.find_first_not_of("0123456789abcdef", 1) == std::string::npos;
  }
  return !tenant.empty() && tenant.size() <= 64 &&
         std::all_of(tenant.begin(), tenant.end(), [](unsigned char c) {
           return std::isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

AgentId Prefixes::SnapshotId(const std::string& scope, const Tokens& tokens, std::size_t length) {
  return AgentId::Internal(kTag + scope + "." + std::to_string(length) + "." +
                           Hex(HashOf(tokens, length)));
}

std::optional<SnapshotKey> Prefixes::Parse(const AgentId& id) {
  const std::string& s = id.str();
  const std::string head = std::string("~") + kTag;
  if (!id.internal() || s.compare(0, head.size(), head) != 0) return std::nullopt;
  const std::size_t dot1 = s.find('.', head.size());
  const std::size_t dot2 = dot1 == std::string::npos ? dot1 : s.find('.', dot1 + 1);
  if (dot2 == std::string::npos || s.size() - dot2 - 1 != kHashHex) return std::nullopt;
  SnapshotKey key;
  key.scope = s.substr(head.size(), dot1 - head.size());
  try {
    std::size_t used = 0;
    key.length = std::stoull(s.substr(dot1 + 1, dot2 - dot1 - 1), &used);
    if (used != dot2 - dot1 - 1) return std::nullopt;
    key.hash = std::stoull(s.substr(dot2 + 1), &used, 16);
    if (used != kHashHex) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return key;
}

PrefixChoice Prefixes::Choose(const std::string& scope, const AgentId& agent, const Tokens& tokens,
                              const std::vector<AgentId>& snapshots) {
  PrefixChoice choice;
  for (const AgentId& id : snapshots) {
    std::optional<SnapshotKey> key = Parse(id);
    if (!key || key->scope != scope || key->length > tokens.size()) continue;
    if (key->length <= choice.start_tokens || HashOf(tokens, key->length) != key->hash) continue;
    choice.start_from = id;
    choice.start_tokens = key->length;
  }
  MutexLock lock(mu_);
  std::size_t shared = 0;
  const AgentId* source = nullptr;
  for (const Seen& s : seen_) {  // newest first: the newest of equals wins
    if (s.scope != scope || s.agent == agent) continue;
    const std::size_t common = CommonPrefix(s.tokens, tokens);
    if (common > shared) {
      shared = common;
      source = &s.agent;
    }
  }
  // A prompt shorter than its shared part plus one token would be the
  // snapshot itself: nothing left for the request to compute.
  shared = std::min(shared, tokens.empty() ? 0 : tokens.size() - 1);
  if (shared >= min_tokens_ && shared >= choice.start_tokens + min_tokens_) {
    choice.build = SnapshotId(scope, tokens, shared);
    choice.build_tokens = shared;
    if (source) choice.build_source = *source;
  }
  seen_.push_front(Seen{scope, agent, tokens});
  if (seen_.size() > max_seen_) seen_.pop_back();
  return choice;
}

}  // namespace agentkv

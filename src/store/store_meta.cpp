#include "store/store_meta.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>

#include "store/sha256.h"

namespace agentkv {

using nlohmann::json;

namespace {

// A field of the metadata: absent gives `fallback`, a wrong type nullopt.
template <typename T>
std::optional<T> Field(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return std::nullopt;
  } else if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned()) return std::nullopt;
  } else {
    if (!it->is_number_integer()) return std::nullopt;
  }
  return it->get<T>();
}

}  // namespace

std::string EncodeMeta(const StoredMemory& e) {
  // -1 for a count not known: what earlier versions wrote and read.
  const long long tokens = e.info.tokens.value_or(-1);
  const json j = {
      {"format", kMetaFormat},      {"agent", e.info.agent.str()}, {"fingerprint", e.fingerprint},
      {"state_file", e.state_file}, {"generation", e.generation},  {"tokens", tokens},
      {"bytes", e.info.bytes},      {"checksum", e.checksum},      {"created", e.info.created},
      {"updated", e.info.updated},  {"prompt_key", e.prompt_key},  {"scope", e.scope}};
  return j.dump(1) + '\n';
}

int MetaFormatOf(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return 1;
  auto it = j.find("format");
  return it != j.end() && it->is_number_integer() ? it->get<int>() : 1;
}

std::variant<StoredMemory, std::string> DecodeMeta(const std::string& text,
                                                   const std::string& hash) {
  const json j = json::parse(text, nullptr, false);
  const std::optional<std::string> agent =
      j.is_object() ? Field<std::string>(j, "agent", "") : std::nullopt;
  const std::optional<std::string> state =
      j.is_object() ? Field<std::string>(j, "state_file", "") : std::nullopt;
  Result<AgentId> id = AgentId::ParseStored(agent.value_or(""));
  if (!agent || !state || agent->empty() || state->empty()) return "unreadable metadata";
  if (!id.ok() || Sha256Hex(id->str()) != hash) return "metadata names another agent";
  const auto tokens = Field<long long>(j, "tokens", 0);
  const auto bytes = Field<long long>(j, "bytes", 0);
  const auto created = Field<std::int64_t>(j, "created", 0);
  const auto updated = Field<std::int64_t>(j, "updated", 0);
  const auto generation = Field<long long>(j, "generation", 0);
  const auto checksum = Field<std::uint64_t>(j, "checksum", 0);
  const auto fingerprint = Field<std::string>(j, "fingerprint", "");
  const auto prompt_key = Field<std::uint64_t>(j, "prompt_key", 0);
  const auto scope = Field<std::string>(j, "scope", "");
  if (!tokens || !bytes || !created || !updated || !generation || !checksum || !fingerprint ||
      !prompt_key || !scope) {
    return "metadata has a field of the wrong type";
  }
  // Counts and times no memory agentkv wrote can have: shown and summed,
  // they would mislead (a budget, a status page).
  constexpr long long kMaxTokens = 1LL << 31;  // llama-server's counts are 32-bit
  constexpr long long kMaxBytes = 1LL << 50;
  constexpr std::int64_t kMaxTime = 253402300800;  // 10000-01-01
  if (*tokens < -1 || *tokens >= kMaxTokens || *bytes < 0 || *bytes >= kMaxBytes ||
      *generation < 1 || *generation >= (1LL << 53) || *created < 0 || *created >= kMaxTime ||
      *updated < 0 || *updated >= kMaxTime) {
    return "metadata has a value out of bounds";
  }
  // Its own file, in the directory itself: never a path elsewhere.
  const std::string own = hash + "." + std::to_string(*generation) + ".";
  if (state->rfind(own, 0) != 0 || state->find('/') != std::string::npos || state->size() < 3 ||
      state->compare(state->size() - 3, 3, ".kv") != 0) {
    return "metadata names a state file that is not the agent's own";
  }
  const TokenCount known = *tokens >= 0 ? TokenCount(*tokens) : std::nullopt;
  // Not verified: a file found on disk is read in full before its restore.
  return StoredMemory{MemoryInfo{id.value(), known, *bytes, *created, *updated, *updated},
                      *state,
                      *generation,
                      *checksum,
                      *fingerprint,
                      *prompt_key,
                      std::nullopt,
                      0,
                      *scope};
}

}  // namespace agentkv

#pragma once
// The proxy's side of prefix snapshots (see core/prefixes.h): tokenizes a
// new agent's request as llama-server will, asks Prefixes where the agent
// starts, and before the request runs, builds a new snapshot on the agent's
// slot from the shared tokens (on the memory of the agent it shares them
// with, or by a prefill) and saves it. When a step does not work, the agent
// starts cold; a request fails only if its slot may hold another agent's
// tokens and could not be erased.
// Thread-safe; blocks on llama-server (call without locks).

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_set>

#include "agentkv/mutex.h"
#include "core/memory_ops.h"
#include "core/prefixes.h"
#include "store/store.h"
#include "upstream/upstream.h"

namespace agentkv {

// Larger requests are not tokenized here: they start without prefix
// snapshots. Tokenizing costs agentkv several times the prompt's bytes (the
// rendered prompt, the answer of /tokenize, its DOM and the token ids: a
// 15.8 MB message peaked at 268 MB with it, 112 MB without), and 1 MiB of
// text is some 250K tokens, more than a slot holds.
inline constexpr std::size_t kMaxPrefixBodyBytes = 1u << 20;

// A new agent's request, tokenized as llama-server will tokenize it.
struct NewAgentPrompt {
  AgentId agent;
  std::string scope;
  Tokens tokens;
};

class PrefixPath {
 public:
  PrefixPath(Upstream& upstream, SlotPool& pool, MemoryOps& memory, Store& store,
             Prefixes& prefixes)
      : upstream_(upstream), pool_(pool), memory_(memory), store_(store), prefixes_(prefixes) {}

  // For `agent` and its request `body` (chat messages or a completion
  // prompt): if the agent has no memory, its prompt's token ids. nullopt if
  // it has memory, or the prompt cannot be tokenized here (other kinds of
  // request, or llama-server refused).
  std::optional<NewAgentPrompt> Prepare(const AgentId& agent, const std::string& scope,
                                        const nlohmann::json& body);
  // Where that agent starts, given the snapshots that exist now: call once
  // it holds a slot (Placer::Place's start_from), so that a snapshot built
  // while it waited counts.
  PrefixChoice Choose(const NewAgentPrompt& prompt);

  // Builds `choice.build`, if any, on `lease`'s slot if the agent was placed
  // cold or from a snapshot: the request's first choice.build_tokens tokens
  // are prefilled and saved as a snapshot. The slot then holds just them,
  // and the request reuses them. On a cold slot, if the agent the tokens
  // are shared with (choice.build_source) is idle and has memory, the
  // snapshot is its KV of them instead, as it computed them (see
  // OnMemory). An error only if the slot may still hold that agent's other
  // tokens and could not be erased: the request must not run then.
  Status Build(const Lease& lease, const PrefixChoice& choice, const Tokens& tokens,
               PromptKey prompt_key);

 private:
  Result<Tokens> Tokenize(const nlohmann::json& body);
  // A prefill of `prompt` on `slot`, one token generated and never decoded:
  // the slot then holds the prompt alone.
  Result<std::string> Prefill(SlotId slot, Tokens prompt);
  // Builds the snapshot on the source's memory, just restored into the
  // lease's slot. True if it was saved (the slot holds its tokens alone);
  // false if not (the slot is erased); an error if the slot could not be.
  Result<bool> OnMemory(const Lease& lease, const PrefixChoice& choice, const Tokens& tokens,
                        PromptKey prompt_key);
  // Claims the right to build `snapshot`: false if it exists or another
  // request is building it (agents arriving together all want it).
  bool BeginBuild(const AgentId& snapshot);
  void EndBuild(const AgentId& snapshot);

  Upstream& upstream_;
  SlotPool& pool_;
  MemoryOps& memory_;
  Store& store_;
  Prefixes& prefixes_;
  Mutex mu_;
  std::unordered_set<AgentId> building_ GUARDED_BY(mu_);
};

}  // namespace agentkv

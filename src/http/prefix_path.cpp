#include "http/prefix_path.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <vector>

#include "http/log_text.h"

namespace agentkv {

using nlohmann::json;

namespace {

bool IsTokenArray(const json& p) {
  if (!p.is_array() || p.empty()) return false;
  for (const json& t : p) {
    if (!t.is_number_integer()) return false;
  }
  return true;
}

}  // namespace

// llama-server renders chat messages with the model's template, then
// tokenizes a prompt with special tokens added and parsed; so does this.
Result<Tokens> PrefixPath::Tokenize(const json& body) {
  std::string text;
  if (auto m = body.find("messages"); m != body.end()) {
    json request = body;
    request.erase("stream");
    Result<std::string> rendered = upstream_.PostJson("/apply-template", request.dump());
    if (!rendered.ok()) return rendered.status();
    const json r = json::parse(rendered.value(), nullptr, false);
    if (!r.is_object() || !r.contains("prompt") || !r["prompt"].is_string()) {
      return Status::Error(ErrorCode::kUpstreamError, "no prompt from /apply-template");
    }
    text = r["prompt"].get<std::string>();
  } else if (auto p = body.find("prompt"); p != body.end()) {
    if (IsTokenArray(*p)) return p->get<Tokens>();
    if (!p->is_string()) return Status::Error(ErrorCode::kUnsupported, "not a single prompt");
    text = p->get<std::string>();
  } else {
    return Status::Error(ErrorCode::kUnsupported, "neither messages nor a prompt");
  }
  Result<std::string> answer = upstream_.PostJson(
      "/tokenize", json{{"content", text}, {"add_special", true}, {"parse_special", true}}.dump());
  if (!answer.ok()) return answer.status();
  const json r = json::parse(answer.value(), nullptr, false);
  if (!r.is_object() || !r.contains("tokens") || !IsTokenArray(r["tokens"])) {
    return Status::Error(ErrorCode::kUpstreamError, "no tokens from /tokenize");
  }
  return r["tokens"].get<Tokens>();
}

std::optional<NewAgentPrompt> PrefixPath::Prepare(const AgentId& agent, const std::string& scope,
                                                  const json& body) {
  if (store_.HasMemory(agent) || pool_.SlotOf(agent)) return std::nullopt;
  const auto started = std::chrono::steady_clock::now();
  Result<Tokens> t = Tokenize(body);
  spdlog::debug(
      "agent {}: prompt tokenized for prefix snapshots in {:.1f} ms", agent.ForLog(),
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
          .count());
  if (!t.ok()) {
    spdlog::debug("agent {}: no prefix snapshot: {}", agent.ForLog(),
                  EscapeForLog(t.status().message()));
    return std::nullopt;
  }
  return NewAgentPrompt{agent, scope, std::move(t.value())};
}

PrefixChoice PrefixPath::Choose(const NewAgentPrompt& prompt) {
  return prefixes_.Choose(prompt.scope, prompt.agent, prompt.tokens, store_.InternalIds());
}

bool PrefixPath::BeginBuild(const AgentId& snapshot) {
  MutexLock lock(mu_);
  if (store_.HasMemory(snapshot)) return false;
  return building_.insert(snapshot).second;
}

void PrefixPath::EndBuild(const AgentId& snapshot) {
  MutexLock lock(mu_);
  building_.erase(snapshot);
}

void PrefixPath::Build(const Lease& lease, const PrefixChoice& choice, const Tokens& tokens,
                       PromptKey prompt_key) {
  const Placement placed = lease.placement();
  if (!choice.build || (placed != Placement::kCold && placed != Placement::kPrefix)) return;
  if (!BeginBuild(*choice.build)) return;
  struct End {
    PrefixPath* path;
    const AgentId& id;
    ~End() { path->EndBuild(id); }
  } end{this, *choice.build};
  const auto length = static_cast<std::ptrdiff_t>(choice.build_tokens);
  // One token generated and never decoded: the slot holds the prompt alone.
  const json prefill = {{"prompt", Tokens(tokens.begin(), tokens.begin() + length)},
                        {"n_predict", 1},
                        {"id_slot", lease.slot().value},
                        {"cache_prompt", true},
                        {"temperature", 0}};
  Result<std::string> r = upstream_.PostJson("/completion", prefill.dump());
  if (!r.ok()) {
    spdlog::warn("prefix snapshot {} not built: {}", choice.build->str(),
                 EscapeForLog(r.status().message()));
    return;
  }
  // A slot holding any other count than the prefix would make a snapshot of
  // tokens nobody sent: SaveSnapshot refuses it before it is committed.
  placer_.SaveSnapshot(lease, *choice.build, length, prompt_key);
}

}  // namespace agentkv

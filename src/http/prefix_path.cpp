#include "http/prefix_path.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <vector>

#include "http/llama_fields.h"
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

Result<std::string> PrefixPath::Prefill(SlotId slot, Tokens prompt) {
  const json prefill = {{"prompt", std::move(prompt)},
                        {"n_predict", 1},
                        {"id_slot", slot.value},
                        {"cache_prompt", true},
                        {"temperature", 0}};
  return upstream_.PostJson("/completion", prefill.dump());
}

Status PrefixPath::Build(const Lease& lease, const PrefixChoice& choice, const Tokens& tokens,
                         PromptKey prompt_key) {
  const Placement placed = lease.placement();
  if (!choice.build || (placed != Placement::kCold && placed != Placement::kPrefix)) {
    return Status::Ok();
  }
  if (!BeginBuild(*choice.build)) return Status::Ok();
  struct End {
    PrefixPath* path;
    const AgentId& id;
    ~End() { path->EndBuild(id); }
  } end{this, *choice.build};
  // The snapshot keeps one token past the shared ones, the prompt's first
  // (see OnMemory): the request's own next token must be another one.
  const bool can_cut = choice.build_tokens > 0 && tokens.front() != tokens[choice.build_tokens];
  if (placed == Placement::kCold && choice.build_source && can_cut) {
    Result<bool> filled = memory_.RestoreFrom(lease, *choice.build_source);
    if (!filled.ok()) return filled.status();
    if (filled.value()) {
      Result<bool> built = OnMemory(lease, choice, tokens, prompt_key);
      if (!built.ok() || built.value()) return built.status();
      // Not built: the slot is erased, and the snapshot is built from nothing.
    }
  }
  const auto length = static_cast<std::ptrdiff_t>(choice.build_tokens);
  Result<std::string> r = Prefill(lease.slot(), Tokens(tokens.begin(), tokens.begin() + length));
  if (!r.ok()) {
    spdlog::warn("prefix snapshot {} not built: {}", choice.build->str(),
                 EscapeForLog(r.status().message()));
    return Status::Ok();
  }
  // A slot holding any other count than the prefix would make a snapshot of
  // tokens nobody sent: SaveSnapshot refuses it before it is committed.
  memory_.SaveSnapshot(lease, *choice.build, length, prompt_key);
  return Status::Ok();
}

// The slot holds the source's tokens, the shared ones first. Sent those and
// one more token, llama-server keeps the shared tokens' KV as the source
// computed it (the same tokens at the same places), drops the source's other
// tokens and computes the one token alone. That token, the prompt's first (a
// BOS for most models), stays at the end of the snapshot: cutting exactly at
// the shared end would recompute the last shared token alone, and one
// token's kernels are not a batch's, which can change an answer. It is not
// this request's next token, so the request reuses the shared tokens only;
// another agent reuses it only if it sent that token there itself.
Result<bool> PrefixPath::OnMemory(const Lease& lease, const PrefixChoice& choice,
                                  const Tokens& tokens, PromptKey prompt_key) {
  const std::size_t length = choice.build_tokens;  // < tokens.size(): see Prefixes::Choose
  Tokens prompt(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(length));
  prompt.push_back(tokens.front());  // not the request's next token: Build checked
  Result<std::string> r = Prefill(lease.slot(), std::move(prompt));
  std::optional<Timings> t;
  if (r.ok()) {
    TimingsScanner scanner;
    scanner.Feed(r.value().data(), r.value().size());
    t = scanner.Finish();
  }
  // Computed anything but the one token: the source did not hold the
  // shared tokens as the snapshot needs them (its memory changed since).
  const bool kept = t && t->prompt_n == 1 && t->cache_n == static_cast<long long>(length);
  if (!kept) {
    spdlog::debug(
        "prefix snapshot {} not built on {}'s memory: {}", choice.build->str(),
        choice.build_source->ForLog(),
        r.ok() ? "it did not hold the shared tokens" : EscapeForLog(r.status().message()));
  }
  if (kept && memory_.SaveSnapshot(lease, *choice.build, static_cast<long long>(length) + 1,
                                   prompt_key, choice.build_source)) {
    return true;
  }
  // The slot may still hold the source's other tokens.
  if (!memory_.Wipe(lease)) {
    return Status::Error(ErrorCode::kUpstreamError,
                         "slot " + std::to_string(lease.slot().value) + " could not be erased");
  }
  return false;
}

}  // namespace agentkv

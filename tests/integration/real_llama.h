#pragma once
// Helpers for tests against the real llama-server and the test models that
// scripts/setup.sh writes ($AGENTKV_LLAMA_SERVER, $AGENTKV_TEST_MODEL and
// $AGENTKV_TEST_MODEL_B override where they are looked for).

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "app/paths.h"

namespace agentkv::testing {

inline std::filesystem::path EnvOr(const char* name, const std::filesystem::path& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::filesystem::path(v) : fallback;
}

inline std::filesystem::path LlamaServerBinary() {
  return EnvOr("AGENTKV_LLAMA_SERVER", DefaultLlamaServer());
}
inline std::filesystem::path TestModel() {
  return EnvOr("AGENTKV_TEST_MODEL", DefaultCacheDir() / "models" / "agentkv-test.gguf");
}
// The test model of another family: qwen3, qwen3moe, gemma3, gpt-oss,
// mamba2, granitehybrid (setup writes them).
inline std::filesystem::path FamilyTestModel(const std::string& arch) {
  return DefaultCacheDir() / "models" / ("agentkv-test-" + arch + ".gguf");
}
inline std::filesystem::path OtherTestModel() {
  return EnvOr("AGENTKV_TEST_MODEL_B", DefaultCacheDir() / "models" / "agentkv-test-b.gguf");
}

// Words drawn from a fixed list with a seeded generator: text that tokenizes
// into many ordinary tokens, different for every seed.
inline std::string Words(unsigned seed, int n) {
  static const char* kWords[] = {
      "river",  "stone",  "planner", "window", "garden", "quickly", "seven",  "blue",
      "market", "engine", "silent",  "winter", "paper",  "bridge",  "orange", "forest",
      "signal", "castle", "memory",  "yellow", "travel", "number",  "simple", "museum",
      "across", "before", "circle",  "doctor", "energy", "family",  "guitar", "island"};
  std::mt19937 rng(seed);
  std::string text;
  for (int i = 0; i < n; ++i) {
    if (i) text += ' ';
    text += kWords[rng() % (sizeof kWords / sizeof *kWords)];
  }
  return text;
}

struct Reply {
  int status = 0;
  nlohmann::json body;
  std::string placement;
  long long cache_n() const { return body["timings"]["cache_n"].get<long long>(); }
  long long prompt_n() const { return body["timings"]["prompt_n"].get<long long>(); }
  long long prompt_tokens() const { return cache_n() + prompt_n(); }
  std::string content() const { return body["choices"][0]["message"]["content"]; }
};

// The top log-probabilities of a chat answer's first token, by token id
// (the request asked for "logprobs": true and "top_logprobs").
inline std::map<long long, double> FirstTokenLogprobs(const Reply& r) {
  std::map<long long, double> out;
  const nlohmann::json& content = r.body["choices"][0]["logprobs"]["content"];
  if (!content.is_array() || content.empty()) return out;
  for (const nlohmann::json& t : content[0]["top_logprobs"]) {
    out[t["id"].get<long long>()] = t["logprob"].get<double>();
  }
  return out;
}

// Whether two answers start from the same context, whatever batches it was
// computed in: llama.cpp's CPU kernels may differ in the last bits between
// batch shapes (more on some CPUs), which a random model's flat logits can
// turn into another greedy token, so equal text is not what a restore can
// promise. The first token's top log-probabilities can: for the test
// model's chat prompts (a 400-word system prompt, a 30-word question), the
// same prompt computed in two batches or in one differed here by at most
// 0.003 (0.0004 with 64-token micro-batches; threads and --no-repack did
// not change it), two questions by 0.022 to 0.040 (their top token the
// same: the chat template's last tokens weigh most). Empty if they agree,
// else why not.
inline std::string NextTokenDisagreement(const Reply& a, const Reply& b) {
  constexpr double kTolerance = 0.01;
  constexpr std::size_t kCommon = 7;
  const std::map<long long, double> x = FirstTokenLogprobs(a), y = FirstTokenLogprobs(b);
  if (x.size() < kCommon || y.size() < kCommon) return "no top_logprobs in the answers";
  std::size_t common = 0;
  double gap = 0;
  for (const auto& [id, logprob] : x) {
    auto it = y.find(id);
    if (it == y.end()) continue;
    ++common;
    gap = std::max(gap, std::abs(logprob - it->second));
  }
  if (common < kCommon)
    return std::to_string(common) + " common tokens in the top " + std::to_string(x.size());
  if (gap > kTolerance) return "log-probabilities " + std::to_string(gap) + " apart";
  return "";
}

// POSTs `body` to agentkv on `port`; a transport error is a test failure.
inline Reply PostJson(int port, const std::string& path, const nlohmann::json& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::seconds(300));
  httplib::Result res = c.Post(path, body.dump(), "application/json");
  Reply r;
  if (!res) {
    ADD_FAILURE() << path << ": " << httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.body = nlohmann::json::parse(res->body, nullptr, false);
  r.placement = res->get_header_value("X-Agentkv-Placement");
  return r;
}

}  // namespace agentkv::testing

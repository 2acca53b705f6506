#pragma once
// Helpers for tests against the real llama-server and the test models that
// scripts/setup.sh writes ($AGENTKV_LLAMA_SERVER, $AGENTKV_TEST_MODEL and
// $AGENTKV_TEST_MODEL_B override where they are looked for).

#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <filesystem>
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

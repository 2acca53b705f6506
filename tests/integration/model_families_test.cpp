// The model families agentkv is tested on, each a small random model that
// setup writes: a llama-server agentkv starts with the user's arguments only,
// and an agent that returns after an eviction is restored with its context.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "app/daemon.h"
#include "integration/real_llama.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Reply;
using testing::Words;
namespace fs = std::filesystem;

fs::path ModelOf(const std::string& arch) {
  return arch == "llama" ? testing::TestModel() : testing::FamilyTestModel(arch);
}

class ModelFamily : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-family-" + std::to_string(::getpid()) + "-" + GetParam());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(ModelOf(GetParam()))) << "run scripts/setup.sh";
  }
  void TearDown() override {
    daemon_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }
  static json Completion(const json& prompt) {
    return {{"prompt", prompt}, {"n_predict", 4}, {"temperature", 0}, {"return_tokens", true}};
  }

  fs::path dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_P(ModelFamily, AReturningAgentIsRestoredWithItsWholeContext) {
  DaemonOptions o;
  o.proxy.port = 0;
  o.memory_dir = dir_ / "memory";
  LlamaProcessOptions launch;
  launch.binary = testing::LlamaServerBinary();
  launch.model = ModelOf(GetParam());
  launch.slots = 1;
  // No --swa-full: agentkv must add it for a sliding-window model.
  launch.extra_args = {"--ctx-size", "4096", "--threads", "2"};
  launch.log_file = dir_ / "llama-server.log";
  o.launch = launch;
  Result<std::unique_ptr<Daemon>> d = Daemon::Start(o);
  ASSERT_TRUE(d.ok()) << d.status().message();
  daemon_ = std::move(d.value());
  const int port = daemon_->port();

  // Token ids, so that the second prompt extends exactly what the slot holds
  // (the prompt and the answer): a recurrent state cannot be cut back.
  json prompt = json::array();
  for (int i = 0; i < 300; ++i) prompt.push_back(300 + (7 * i) % 5000);
  Reply first = testing::PostJson(port, "/agents/a/completion", Completion(prompt));
  ASSERT_EQ(first.status, 200) << first.body.dump();
  ASSERT_EQ(testing::PostJson(port, "/agents/b/completion", Completion(Words(102, 50))).status,
            200);  // evicts a
  json next = prompt;
  for (const json& t : first.body["tokens"]) next.push_back(t);
  for (int t : {400, 401, 402}) next.push_back(t);
  Reply back = testing::PostJson(port, "/agents/a/completion", Completion(next));
  ASSERT_EQ(back.status, 200) << back.body.dump();
  EXPECT_EQ(back.placement, "restored");
  // The slot holds the prompt and all but the last generated token.
  const long long held =
      first.prompt_tokens() + first.body["timings"]["predicted_n"].get<long long>() - 1;
  EXPECT_GE(back.cache_n(), held) << "reused " << back.cache_n() << " of " << held;
  std::cout << "[ family ] " << GetParam() << ": returning agent cache_n " << back.cache_n()
            << " of " << back.prompt_tokens() << " prompt tokens\n";

  // A prompt that diverges inside the saved tokens: attention models reuse
  // the common part; recurrent ones recompute it all. Either way nothing is
  // quarantined and no slot is reset.
  ASSERT_EQ(testing::PostJson(port, "/agents/b/completion", Completion(Words(103, 50))).status,
            200);  // evicts a
  json diverging(prompt.begin(), prompt.begin() + 200);
  diverging.push_back(999);
  Reply other = testing::PostJson(port, "/agents/a/completion", Completion(diverging));
  ASSERT_EQ(other.status, 200);
  EXPECT_EQ(other.placement, "restored");
  // Recurrent state, and the window a sliding-window model's slot file keeps,
  // cannot be cut back to 200 tokens: llama-server recomputes it all.
  const bool recurrent = GetParam() == "mamba2" || GetParam() == "granitehybrid";
  const bool windowed = GetParam() == "gemma3" || GetParam() == "gpt-oss";
  EXPECT_EQ(other.cache_n(), recurrent || windowed ? 0 : 200);

  httplib::Client c("127.0.0.1", port);
  const json stats = json::parse(c.Get("/admin/stats")->body);
  EXPECT_EQ(stats["model"]["arch"], GetParam());
  EXPECT_EQ(stats["model"]["swa_full_added_by_agentkv"], windowed);
  EXPECT_EQ(stats["persistence"], true);
  EXPECT_EQ(stats["quarantined"], 0);
  EXPECT_EQ(stats["resets"], 0);
  EXPECT_EQ(stats["model"]["recurrent"], recurrent);
}

INSTANTIATE_TEST_SUITE_P(Families, ModelFamily,
                         ::testing::Values("llama", "qwen3", "qwen3moe", "gemma3", "gpt-oss",
                                           "mamba2", "granitehybrid"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string name = p.param;  // gtest names: letters, digits, _
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// In front of a llama-server started without --swa-full, a sliding-window
// model's slots cannot be restored: agentkv serves it statelessly instead of
// quarantining every file it would write.
TEST(SlidingWindow, BehindALlamaServerWithoutSwaFullAgentsAreServedStatelessNotQuarantined) {
  const fs::path dir = fs::temp_directory_path() / ("agentkv-swa-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "memory");
  LlamaProcess llama;
  LlamaProcessOptions lo;
  lo.binary = testing::LlamaServerBinary();
  lo.model = testing::FamilyTestModel("gemma3");
  lo.memory_dir = dir / "memory";
  lo.slots = 1;
  lo.extra_args = {"--ctx-size", "4096", "--threads", "2"};
  lo.log_file = dir / "llama-server.log";
  ASSERT_TRUE(llama.Start(lo).ok());
  DaemonOptions o;
  o.proxy.port = 0;
  o.upstream.base_url = llama.base_url();
  o.memory_dir = dir / "memory";
  o.store.min_free_bytes = 0;
  Result<std::unique_ptr<Daemon>> d = Daemon::Start(o);
  ASSERT_TRUE(d.ok()) << d.status().message();
  const int port = d.value()->port();
  const std::string prompt = Words(110, 200);
  for (const char* agent : {"a", "b", "a"}) {
    Reply r = testing::PostJson(port, std::string("/agents/") + agent + "/completion",
                                {{"prompt", prompt}, {"n_predict", 4}});
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.placement, "stateless");
  }
  httplib::Client c("127.0.0.1", port);
  const json stats = json::parse(c.Get("/admin/stats")->body);
  EXPECT_EQ(stats["persistence"], false);
  EXPECT_EQ(stats["model"]["sliding_window"], 64);
  EXPECT_EQ(stats["quarantined"], 0);
  EXPECT_EQ(stats["saves"], 0);
  d.value()->Stop();
  d.value().reset();
  llama.Stop();
  fs::remove_all(dir);
}

// --kv-ram-budget: the model's KV cost measured by a short llama-server run,
// then as many slots of the asked context as the budget holds.
TEST(KvRamBudget, PicksTheSlotCountFromTheModelsMeasuredCost) {
  const fs::path dir = fs::temp_directory_path() / ("agentkv-budget-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto options = [&](std::uint64_t budget) {
    DaemonOptions o;
    o.proxy.port = 0;
    o.memory_dir = dir / "memory";
    LlamaProcessOptions launch;
    launch.binary = testing::LlamaServerBinary();
    launch.model = testing::TestModel();
    launch.extra_args = {"--threads", "2"};
    launch.log_file = dir / "llama-server.log";
    o.launch = launch;
    o.kv_ram_budget = budget;
    o.ctx_per_slot = 1024;
    return o;
  };
  // The test model holds 2 layers x K and V x 2 heads x 64 values of 2
  // bytes a token: 1 MiB for 1024 tokens, and a little more in a file.
  Result<std::unique_ptr<Daemon>> d = Daemon::Start(options(3'700'000));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d.value()->slot_count(), 3);
  httplib::Client c("127.0.0.1", d.value()->port());
  const json model = json::parse(c.Get("/admin/stats")->body)["model"];
  // The file adds a few bytes a cell (position, sequence) to the KV itself.
  EXPECT_NEAR(model["kv_bytes_per_1k_tokens_in_ram"].get<double>(), 1024 * 1000, 25 * 1000);
  d.value()->Stop();
  d.value().reset();

  Result<std::unique_ptr<Daemon>> small = Daemon::Start(options(500'000));
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("cannot hold one slot"), std::string::npos)
      << small.status().message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agentkv

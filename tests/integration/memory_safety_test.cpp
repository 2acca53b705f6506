// No client request and no passing fault may cost an agent its memory:
// against the real llama-server, with the requests and signals users send.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "integration/agentkv_process.h"
#include "integration/real_daemon_fixture.h"
#include "store/sha256.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Reply;
using testing::Words;
namespace fs = std::filesystem;
using MemorySafetyTest = testing::RealDaemonTest;

// The reported sequence: llama-server answers 400 to a new agent's request
// (no timings), which used to reset every slot without saving it.
TEST_F(MemorySafetyTest, ARequestLlamaServerRefusesResetsNoSlotUnderEitherPolicy) {
  for (SavePolicy policy : {SavePolicy::kTurnEnd, SavePolicy::kEviction}) {
    const std::string name = policy == SavePolicy::kTurnEnd ? "turn-end" : "eviction";
    SCOPED_TRACE(name);
    StartDaemon([policy](DaemonOptions& o) { o.save_policy = policy; });
    const int port = daemon_->port();
    const std::string v = "v-" + name, prompt = Words(70, 120);
    Turn(port, v, prompt);
    Reply bad = testing::PostJson(port, "/agents/new-" + name + "/completion",
                                  {{"prompt", "x"}, {"n_predict", "bad"}});
    EXPECT_EQ(bad.status, 400) << bad.body.dump();
    daemon_->placer().DrainSaves();
    Reply again = Turn(port, v, prompt + " " + Words(71, 10));
    EXPECT_EQ(again.placement, "resident");
    Turn(port, "w-" + name, Words(72, 40));  // evicts new-*, the least recently used
    daemon_->placer().DrainSaves();
    EXPECT_EQ(daemon_->placer().stats().resets, 0);
    EXPECT_EQ(daemon_->placer().stats().save_failures, 0);
    Reply back = Turn(port, v, prompt + " " + Words(71, 10) + " " + Words(73, 10));
    EXPECT_EQ(back.placement, "resident");
    EXPECT_GT(back.cache_n(), 100) << "its KV is still there";
  }
}

// Token ids that do not start as the agent's text did: llama-server reuses
// nothing, which used to be read as "llama-server lost every slot".
TEST_F(MemorySafetyTest, AResidentAgentsPromptThatStartsDifferentlyResetsNoSlot) {
  StartDaemon();
  const int port = daemon_->port();
  Turn(port, "a", Words(80, 120));
  const std::string b = Words(81, 120);
  Turn(port, "b", b);
  json ids = json::array();
  for (int i = 0; i < 24; ++i) ids.push_back(300 + 7 * i);
  Reply r = testing::PostJson(port, "/agents/a/completion", {{"prompt", ids}, {"n_predict", 4}});
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.placement, "resident");
  EXPECT_EQ(r.cache_n(), 0);
  EXPECT_EQ(daemon_->placer().stats().resets, 0);
  Reply other = Turn(port, "b", b + " " + Words(82, 10));
  EXPECT_EQ(other.placement, "resident") << "b was not forgotten";
  EXPECT_GT(other.cache_n(), 100);
}

// Ctrl-C in a terminal, `kill -- -PGID` and some container runtimes signal
// the whole process group, llama-server included. agentkv used to save its
// dirty agent into a llama-server that was shutting down, and hang.
TEST(GracefulStop, ASignalToTheWholeProcessGroupStillSavesTheDirtyAgentWithinTheDeadline) {
  const fs::path dir = fs::temp_directory_path() / ("agentkv-pgrp-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const fs::path memory = dir / "memory";
  const fs::path meta = memory / (Sha256Hex("dirty") + ".meta");
  {
    testing::AgentkvProcess::Options own_group;
    own_group.own_group = true;
    testing::AgentkvProcess a(
        {"--llama-server", testing::LlamaServerBinary().string(), "--model",
         testing::TestModel().string(), "--memory-dir", memory.string(), "--llama-log",
         (dir / "llama.log").string(), "--save-policy", "eviction", "--stop-timeout", "30", "--",
         "--ctx-size", "4096", "--threads", "2"},
        own_group);
    Reply r = testing::PostJson(a.port(), "/agents/dirty/completion",
                                {{"prompt", Words(90, 100)}, {"n_predict", 4}});
    ASSERT_EQ(r.status, 200);
    ASSERT_FALSE(fs::exists(meta)) << "the eviction policy has not saved it yet";
    ASSERT_EQ(::kill(-a.pid(), SIGTERM), 0);
    const std::optional<int> status = a.WaitFor(std::chrono::seconds(60));
    ASSERT_TRUE(status.has_value()) << "still running a minute later:\n" << a.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << a.log();
  }
  EXPECT_TRUE(fs::exists(meta)) << "the dirty agent was saved";
  if (!::testing::Test::HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace agentkv

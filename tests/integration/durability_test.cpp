// Fault injection against the real llama-server: agentkv killed and
// restarted, memory files damaged or written for another model, llama-server
// killed and restarted, a disk budget smaller than the workload, deletion.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/daemon.h"
#include "integration/agentkv_process.h"
#include "integration/real_daemon_fixture.h"
#include "store/sha256.h"

namespace agentkv {
namespace {

// These agents share their prompts' start: with prefix snapshots, one whose
// memory is gone would start from one (see PrefixTest) instead of cold.
void NoPrefixes(DaemonOptions& o) { o.prefix_min_tokens = 0; }

using nlohmann::json;
using testing::Reply;
using testing::Words;
namespace fs = std::filesystem;

using testing::AgentkvProcess;

using DurabilityTest = testing::RealDaemonTest;

// SIGKILL, then a restart: the agent's saved memory comes back. (A kill at
// each step of a save is tested in-process, over a file system that crashes
// on demand: tests/store/store_faults_test.cpp.)
TEST_F(DurabilityTest, AgentkvKilledAfterASaveRestoresTheSavedMemoryOnRestart) {
  const std::string first = Words(1, 120);
  const std::string agent = "killed";
  long long saved_tokens = 0;
  {
    AgentkvProcess a(LlamaUrl(), dir_ / "memory");
    Turn(a.port(), agent, first);
    json saved;
    for (int i = 0; i < 100000 && !saved.is_object(); ++i) {  // the turn-end save
      saved = Admin(a.port(), "/admin/agents/" + agent)["saved"];
    }
    ASSERT_TRUE(saved.is_object());
    saved_tokens = saved["tokens"].get<long long>();
    ASSERT_EQ(::kill(a.pid(), SIGKILL), 0);
    const int status = a.Wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << a.log();
  }
  AgentkvProcess b(LlamaUrl(), dir_ / "memory");
  const json saved = Admin(b.port(), "/admin/agents/" + agent)["saved"];
  ASSERT_TRUE(saved.is_object()) << b.log();
  EXPECT_EQ(saved["tokens"].get<long long>(), saved_tokens);
  EXPECT_EQ(FilesOf(agent).size(), 2u) << "one state file, one metadata file, no leftovers";
  Reply back = Turn(b.port(), agent, first + " " + Words(3, 20));
  EXPECT_EQ(back.placement, "restored");
  EXPECT_GE(back.cache_n(), saved_tokens - 10);
  EXPECT_EQ(Admin(b.port(), "/admin/stats")["quarantined"], 0);
}

// A truncated file and a flipped byte are caught; the agent is prefilled and
// gets the same answer as an agent that never had memory.
TEST_F(DurabilityTest, DamagedMemoryFallsBackToAPrefillWithTheSameAnswer) {
  const std::string prompt = Words(4, 150);
  StartDaemon();
  Turn(daemon_->port(), "truncated", prompt);
  Turn(daemon_->port(), "flipped", prompt);
  daemon_->Stop();
  daemon_.reset();
  fs::resize_file(StateFileOf("truncated"), fs::file_size(StateFileOf("truncated")) / 2);
  {
    const fs::path f = StateFileOf("flipped");
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(fs::file_size(f) / 2));
    const char c = static_cast<char>(io.peek());
    io.seekp(static_cast<std::streamoff>(fs::file_size(f) / 2));
    io.put(static_cast<char>(c ^ 0x20));
  }
  StartDaemon(NoPrefixes);  // the fallback is a plain prefill
  const std::string next = prompt + " " + Words(5, 30);
  const Reply control = Turn(daemon_->port(), "control", next);
  for (const char* agent : {"truncated", "flipped"}) {
    SCOPED_TRACE(agent);
    Reply r = Turn(daemon_->port(), agent, next);
    EXPECT_EQ(r.placement, "cold");
    EXPECT_EQ(r.cache_n(), 0);
    EXPECT_EQ(r.body["content"], control.body["content"]);
  }
  EXPECT_EQ(daemon_->store().quarantined(), 2);
  EXPECT_FALSE(fs::is_empty(dir_ / "memory" / "quarantine"));
}

// Memory written for one model is never restored into another.
TEST_F(DurabilityTest, MemoryFromAnotherModelIsNotRestored) {
  const std::string prompt = Words(6, 150);
  StartDaemon();
  Turn(daemon_->port(), "switcher", prompt);
  daemon_->Stop();
  daemon_.reset();
  llama_.Stop();
  StartLlama(testing::OtherTestModel());
  StartDaemon(NoPrefixes);  // the fallback is a plain prefill
  const std::string next = prompt + " " + Words(7, 30);
  const Reply control = Turn(daemon_->port(), "control", next);
  Reply r = Turn(daemon_->port(), "switcher", next);
  EXPECT_EQ(r.placement, "cold");
  EXPECT_EQ(r.cache_n(), 0);
  EXPECT_EQ(r.body["content"], control.body["content"]);
  EXPECT_EQ(daemon_->store().quarantined(), 1);
}

// llama-server killed and restarted mid-workload: agents continue via restores.
TEST_F(DurabilityTest, AgentsContinueThroughALlamaServerRestart) {
  StartDaemon();
  std::vector<std::string> convo(3);
  for (int i = 0; i < 3; ++i) convo[i] = Words(10 + i, 120);
  for (int i = 0; i < 3; ++i) Turn(daemon_->port(), "w" + std::to_string(i), convo[i]);
  daemon_->placer().DrainSaves();
  ::kill(llama_.pid(), SIGKILL);
  llama_.Stop();
  StartLlama(testing::TestModel());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE("agent " + std::to_string(i) + " round " + std::to_string(round));
      const long long before = static_cast<long long>(convo[i].size());
      convo[i] += " " + Words(20 + 10 * round + i, 20);
      Reply r = Turn(daemon_->port(), "w" + std::to_string(i), convo[i]);
      ASSERT_EQ(r.status, 200);
      if (round == 1) {
        EXPECT_GT(r.cache_n(), 100) << "its memory came back";
      }
      (void)before;
    }
  }
  EXPECT_GE(daemon_->placer().stats().resets, 1);
}

// llama-server dies just before a request is placed, before the health
// watch (here every 3 s) has noticed: the placement's restore and erase meet
// a dead upstream. The request waits for llama-server's return, as one
// arriving a moment later would, and is then served warm, not 502.
TEST_F(DurabilityTest, ARequestPlacedJustAfterLlamaServerDiedWaitsForItsReturn) {
  StartDaemon([](DaemonOptions& o) { o.health_interval = std::chrono::seconds(3); });
  std::vector<std::string> convo(3);
  for (int i = 0; i < 3; ++i) {
    convo[i] = Words(60 + i, 120);
    Turn(daemon_->port(), "d" + std::to_string(i), convo[i]);
  }
  daemon_->placer().DrainSaves();  // d0 was evicted: its next turn restores
  ::kill(llama_.pid(), SIGKILL);
  llama_.Stop();
  auto next = std::async(std::launch::async, [&] {
    return Turn(daemon_->port(), "d0", convo[0] + " " + Words(70, 20));
  });
  StartLlama(testing::TestModel());
  const Reply r = next.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.placement, "restored");
  EXPECT_GT(r.cache_n(), 100) << "its memory came back";
}

// The disk budget holds under a workload that exceeds it.
TEST_F(DurabilityTest, TheDiskBudgetHoldsWithRealFiles) {
  StartDaemon();
  Turn(daemon_->port(), "probe", Words(30, 100));
  daemon_->placer().DrainSaves();
  const std::uint64_t one = daemon_->store().TotalBytes();
  ASSERT_GT(one, 0u);
  StartDaemon([one](DaemonOptions& o) { o.store.budget_bytes = one * 3; });
  for (int i = 0; i < 8; ++i) {
    Turn(daemon_->port(), "b" + std::to_string(i), Words(40 + i, 100));
    daemon_->placer().DrainSaves();
    std::uint64_t on_disk = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "memory")) {
      if (e.is_regular_file()) on_disk += e.file_size();
    }
    const std::uint64_t meta_slack = 2048 * 4;  // metadata files are small
    EXPECT_LE(on_disk, one * 3 + meta_slack) << "after agent " << i;
  }
  EXPECT_LE(daemon_->store().List().size(), 3u);
}

// After DELETE, nothing of the agent is left on disk.
TEST_F(DurabilityTest, DeletingAnAgentLeavesNothingOnDisk) {
  StartDaemon();
  Turn(daemon_->port(), "gone", Words(50, 100));
  daemon_->placer().DrainSaves();
  ASSERT_FALSE(FilesOf("gone").empty());
  httplib::Client c("127.0.0.1", daemon_->port());
  ASSERT_EQ(c.Delete("/admin/agents/gone")->status, 200);
  EXPECT_TRUE(FilesOf("gone").empty());
  Reply r = Turn(daemon_->port(), "gone", Words(50, 100));
  EXPECT_EQ(r.placement, "cold");
  EXPECT_EQ(r.cache_n(), 0) << "its slot was erased too";
}

// A llama-server that agentkv started and that crashes is restarted; a
// request arriving meanwhile waits for it; its output reaches agentkv's log.
TEST(Supervision, ACrashedLlamaServerIsRestartedWhileRequestsWait) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  const fs::path dir = fs::temp_directory_path() / ("agentkv-sup-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  DaemonOptions o;
  o.proxy.port = 0;
  o.memory_dir = dir;
  o.health_interval = std::chrono::milliseconds(50);
  LlamaProcessOptions launch;
  launch.binary = testing::LlamaServerBinary();
  launch.model = testing::TestModel();
  launch.extra_args = {"--ctx-size", "8192", "--threads", "2"};
  o.launch = launch;  // no log file: its output goes to agentkv's log
  Result<std::unique_ptr<Daemon>> started = Daemon::Start(o);
  ASSERT_TRUE(started.ok()) << started.status().message();
  Daemon& d = *started.value();
  const std::string prompt = Words(60, 120);
  Reply first =
      testing::PostJson(d.port(), "/agents/s/completion", {{"prompt", prompt}, {"n_predict", 4}});
  ASSERT_EQ(first.status, 200);
  d.placer().DrainSaves();

  const pid_t old_pid = d.llama_pid();
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  for (long i = 0; i < 2000000000L && d.metrics().upstream_restarts == 0; ++i) {
    std::this_thread::yield();
  }
  ASSERT_EQ(d.metrics().upstream_restarts, 1);
  // llama-server is down or starting: this request waits for it.
  Reply back = testing::PostJson(d.port(), "/agents/s/completion",
                                 {{"prompt", prompt + " more"}, {"n_predict", 4}});
  EXPECT_EQ(back.status, 200) << back.body.dump();
  EXPECT_EQ(back.placement, "restored") << "its memory came back from disk";
  EXPECT_NE(d.llama_pid(), old_pid);
  d.Stop();
  spdlog::default_logger()->sinks().pop_back();
  EXPECT_NE(log.str().find("llama-server: "), std::string::npos) << "its output is in our log";
  EXPECT_NE(log.str().find("restarting llama-server (attempt 1 of 5)"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agentkv

// Fault injection against the real llama-server: agentkv killed in the middle
// of a save, memory files damaged or written for another model, llama-server
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
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agentkv/daemon.h"
#include "agentkv/sha256.h"
#include "real_llama.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Reply;
using testing::Words;
namespace fs = std::filesystem;

// `agentkv serve --upstream ...` as a child process, so that it can be killed.
class AgentkvProcess {
 public:
  AgentkvProcess(const std::string& upstream, const fs::path& memory,
                 const std::string& crash_at = "") {
    port_ = FindFreePort();
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    const std::string port = std::to_string(port_), mem = memory.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(out[1], STDERR_FILENO);
      if (!crash_at.empty()) ::setenv("AGENTKV_TEST_CRASH_AT", crash_at.c_str(), 1);
      ::execl(AGENTKV_BINARY, AGENTKV_BINARY, "serve", "--upstream", upstream.c_str(), "--port",
              port.c_str(), "--memory-dir", mem.c_str(), "--log-level", "debug", nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    reader_ = std::thread([this, fd = out[0]] {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        std::lock_guard<std::mutex> lock(mu_);
        log_.append(buf, static_cast<size_t>(n));
        changed_.notify_all();
      }
      ::close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      eof_ = true;
      changed_.notify_all();
    });
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock,
                  [&] { return eof_ || log_.find("agentkv listening") != std::string::npos; });
    EXPECT_FALSE(eof_) << log_;
  }
  ~AgentkvProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
    if (reader_.joinable()) reader_.join();
  }

  int port() const { return port_; }
  std::string log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  // Blocks until the process exits (its output closes) and returns its status.
  int Wait() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return eof_; });
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  int Terminate() {
    ::kill(pid_, SIGTERM);
    return Wait();
  }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::string log_;
  bool eof_ = false;
};

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-dur-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "memory");
    ASSERT_TRUE(fs::exists(testing::LlamaServerBinary())) << "run scripts/setup.sh";
    ASSERT_TRUE(fs::exists(testing::TestModel())) << "run scripts/setup.sh";
    ASSERT_TRUE(fs::exists(testing::OtherTestModel())) << "run scripts/setup.sh";
    llama_port_ = FindFreePort();
    StartLlama(testing::TestModel());
  }
  void TearDown() override {
    daemon_.reset();
    llama_.Stop();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  void StartLlama(const fs::path& model) {
    LlamaProcessOptions o;
    o.binary = testing::LlamaServerBinary();
    o.model = model;
    o.memory_dir = dir_ / "memory";
    o.slots = 2;
    o.port = llama_port_;  // the same address across restarts
    o.extra_args = {"--ctx-size", "8192", "--threads", "2"};
    o.log_file = dir_ / "llama-server.log";
    ASSERT_TRUE(llama_.Start(o).ok());
  }
  std::string LlamaUrl() const { return "http://127.0.0.1:" + std::to_string(llama_port_); }

  // An in-process agentkv in front of the test's llama-server.
  void StartDaemon(const std::function<void(DaemonOptions&)>& configure = nullptr) {
    daemon_.reset();
    DaemonOptions o;
    o.proxy.port = 0;
    o.upstream.base_url = LlamaUrl();
    o.memory_dir = dir_ / "memory";
    o.store.min_free_bytes = 0;
    o.health_interval = std::chrono::milliseconds(20);
    if (configure) configure(o);
    Result<std::unique_ptr<Daemon>> d = Daemon::Start(o);
    ASSERT_TRUE(d.ok()) << d.status().message();
    daemon_ = std::move(d.value());
  }

  static json Completion(const std::string& prompt) {
    return {{"prompt", prompt}, {"n_predict", 8}, {"temperature", 0}};
  }
  Reply Turn(int port, const std::string& agent, const std::string& prompt) {
    Reply r = testing::PostJson(port, "/agents/" + agent + "/completion", Completion(prompt));
    EXPECT_EQ(r.status, 200) << agent << ": " << r.body.dump();
    return r;
  }
  json Admin(int port, const std::string& path) {
    httplib::Client c("127.0.0.1", port);
    httplib::Result r = c.Get(path);
    return r ? json::parse(r->body, nullptr, false) : json();
  }
  // The agent's files in the memory directory (not in quarantine/).
  std::vector<std::string> FilesOf(const std::string& agent) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_ / "memory")) {
      const std::string name = e.path().filename().string();
      if (name.rfind(Sha256Hex(agent), 0) == 0) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path StateFileOf(const std::string& agent) {
    for (const std::string& f : FilesOf(agent)) {
      if (f.size() > 3 && f.substr(f.size() - 3) == ".kv") return dir_ / "memory" / f;
    }
    ADD_FAILURE() << "no state file for " << agent;
    return {};
  }

  fs::path dir_;
  int llama_port_ = 0;
  LlamaProcess llama_;
  std::unique_ptr<Daemon> daemon_;
};

// SIGKILL at each step of a save, then a restart: the agent gets its old
// memory or its new one, never a torn file.
TEST_F(DurabilityTest, AgentkvKilledAtAnyStepOfASaveKeepsTheOldOrTheNewMemory) {
  const std::string first = Words(1, 120), second = first + " " + Words(2, 60);
  // Before the metadata rename the old memory rules; from it on, the new.
  const std::vector<std::pair<std::string, bool>> points = {{"state-temp-written", false},
                                                            {"state-renamed", false},
                                                            {"meta-temp-written", false},
                                                            {"meta-renamed", true}};
  for (const auto& [point, expect_new] : points) {
    SCOPED_TRACE(point);
    const std::string agent = "crash-" + point;
    // What a turn leaves in the KV: its prompt and what it generated, less
    // the few tokens llama-server does not keep (learnt from the first turn).
    auto processed = [](const Reply& r) {
      return r.prompt_tokens() + r.body["timings"]["predicted_n"].get<long long>();
    };
    long long old_tokens = 0, new_tokens = 0, unkept = 0;
    {
      AgentkvProcess a(LlamaUrl(), dir_ / "memory");
      const Reply r = Turn(a.port(), agent, first);
      json saved;
      for (int i = 0; i < 100000 && !saved.is_object(); ++i) {  // the turn-end save
        saved = Admin(a.port(), "/admin/agents/" + agent)["saved"];
      }
      ASSERT_TRUE(saved.is_object());
      old_tokens = saved["tokens"].get<long long>();
      unkept = processed(r) - old_tokens;
      EXPECT_EQ(a.Terminate(), 0) << a.log();
    }
    {
      AgentkvProcess b(LlamaUrl(), dir_ / "memory", point);
      Reply r = Turn(b.port(), agent, second);
      new_tokens = processed(r) - unkept;
      const int status = b.Wait();  // the turn-end save kills it
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << b.log();
    }
    AgentkvProcess c(LlamaUrl(), dir_ / "memory");
    const json saved = Admin(c.port(), "/admin/agents/" + agent)["saved"];
    ASSERT_TRUE(saved.is_object()) << c.log();
    EXPECT_EQ(saved["tokens"].get<long long>(), expect_new ? new_tokens : old_tokens);
    EXPECT_EQ(FilesOf(agent).size(), 2u) << "one state file, one metadata file, no leftovers";
    Reply back = Turn(c.port(), agent, second + " " + Words(3, 20));
    EXPECT_EQ(back.placement, "restored");
    EXPECT_GE(back.cache_n(), (expect_new ? new_tokens : old_tokens) - 10);
    EXPECT_EQ(Admin(c.port(), "/admin/stats")["quarantined"], 0);
  }
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
  StartDaemon();
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
  StartDaemon();
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

#pragma once
// A local cluster, as scripts/cluster.sh starts one, owned by the test:
// agentkv nodes (each starting its own llama-server on the test model) on one
// shared memory directory, and nginx or HAProxy in front running
// configs/nginx.conf or configs/haproxy.cfg as shipped (`scripts/cluster.sh
// lb-config` puts the nodes and port in). Every process is stopped when the
// fixture ends; a missing binary fails the test.

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "integration/agentkv_process.h"
#include "integration/real_llama.h"
#include "store/sha256.h"
#include "support/launcher.h"

namespace agentkv::testing {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// $env if set, else `name` in /usr/sbin, /usr/local/sbin or PATH; "" if none.
inline std::string FindTool(const char* env, const std::string& name) {
  if (const char* v = std::getenv(env); v && *v) return v;
  std::vector<std::string> dirs = {"/usr/sbin", "/usr/local/sbin"};
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    for (std::size_t at = 0, next; at <= p.size(); at = next + 1) {
      next = p.find(':', at);
      if (next == std::string::npos) next = p.size();
      dirs.push_back(p.substr(at, next - at));
    }
  }
  for (const std::string& d : dirs) {
    const fs::path f = fs::path(d) / name;
    if (!d.empty() && ::access(f.c_str(), X_OK) == 0) return f.string();
  }
  return "";
}

// True while a process exists and is not a zombie.
inline bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const std::size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

// `agentkv serve --node-id NAME --memory-dir SHARED` starting its own
// llama-server (2 slots of 1,024 tokens, one thread).
class ClusterNode {
 public:
  ClusterNode(const std::string& name, int port, const fs::path& memory, const fs::path& logs)
      : name_(name) {
    AgentkvProcess::Options o;
    o.port = port;
    process_ = std::make_unique<AgentkvProcess>(
        std::vector<std::string>{
            "--node-id", name, "--memory-dir", memory.string(), "--slots", "2", "-m",
            TestModel().string(), "--llama-server", LlamaServerBinary().string(), "--llama-log",
            (logs / (name + "-llama.log")).string(), "--", "--ctx-size", "2048", "--threads", "1"},
        o);
    std::smatch m;
    const std::string log = process_->log();
    if (std::regex_search(log, m, std::regex("started llama-server \\(pid (\\d+)\\)"))) {
      llama_pid_ = std::stoi(m[1]);
    }
    EXPECT_GT(llama_pid_, 0) << log;
  }

  const std::string& name() const { return name_; }
  int port() const { return process_->port(); }
  std::string log() { return process_->log(); }

  // SIGKILL to llama-server and agentkv at once; returns when both are gone.
  void Kill() {
    if (llama_pid_ > 0) ::kill(llama_pid_, SIGKILL);
    ::kill(process_->pid(), SIGKILL);
    process_->Wait();
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (llama_pid_ > 0 && Running(llama_pid_) && Clock::now() < deadline) {
      std::this_thread::yield();
    }
    EXPECT_FALSE(Running(llama_pid_)) << "llama-server outlived SIGKILL";
  }

 private:
  std::string name_;
  std::unique_ptr<AgentkvProcess> process_;
  pid_t llama_pid_ = -1;
};

// What an answer through the balancer or from a node says.
struct Answer {
  int status = 0;  // 0: no HTTP answer at all
  json body;
  std::string placement;
  std::string upstream;  // X-Agentkv-Upstream: the node that answered, per the balancer
  Clock::time_point sent, received;
  long long cache_n() const { return body["timings"].value("cache_n", -1LL); }
  long long prompt_tokens() const {
    return body["timings"].value("cache_n", 0LL) + body["timings"].value("prompt_n", 0LL);
  }
};

inline Answer PostTurn(int port, const std::string& agent, const std::string& prompt,
                       int n_predict) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::seconds(120));
  const json body = {{"prompt", prompt}, {"n_predict", n_predict}, {"temperature", 0}};
  Answer a;
  a.sent = Clock::now();
  httplib::Result res = c.Post("/agents/" + agent + "/completion", body.dump(), "application/json");
  a.received = Clock::now();
  if (!res) return a;
  a.status = res->status;
  a.body = json::parse(res->body, nullptr, false);
  a.placement = res->get_header_value("X-Agentkv-Placement");
  a.upstream = res->get_header_value("X-Agentkv-Upstream");
  return a;
}

inline json GetJson(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  httplib::Result r = c.Get(path);
  return r && r->status == 200 ? json::parse(r->body, nullptr, false) : json();
}

// nginx or HAProxy in the foreground, on the shipped configuration.
class Balancer {
 public:
  Balancer(const std::string& kind, const std::vector<int>& nodes, const fs::path& dir)
      : kind_(kind) {
    const std::string binary = kind == "nginx" ? FindTool("AGENTKV_NGINX", "nginx")
                                               : FindTool("AGENTKV_HAPROXY", "haproxy");
    if (binary.empty()) {
      ADD_FAILURE() << kind << " is missing: run scripts/setup.sh";
      return;
    }
    port_ = FindFreePort();
    std::vector<std::string> command = {
        "bash",      std::string(AGENTKV_SOURCE_DIR) + "/scripts/cluster.sh",
        "lb-config", kind,
        "--port",    std::to_string(port_)};
    for (int p : nodes) command.push_back(std::to_string(p));
    const Finished generated = RunToEnd(command);
    if (generated.status != 0) {
      ADD_FAILURE() << "scripts/cluster.sh lb-config failed:\n" << generated.output;
      return;
    }
    const std::string& config = generated.output;
    const fs::path lb = dir / kind;
    fs::create_directories(lb / "tmp");
    std::vector<std::string> argv;
    if (kind == "nginx") {
      std::ofstream(lb / "agentkv.conf") << config;
      std::ofstream main(lb / "nginx.conf");
      // As root, nginx's workers would run as nobody, who cannot write here.
      if (::getuid() == 0) main << "user root root;\n";
      main << "worker_processes 1;\npid " << (lb / "nginx.pid").string() << ";\nerror_log "
           << (lb / "error.log").string() << ";\nevents { worker_connections 512; }\nhttp {\n"
           << "  access_log " << (lb / "access.log").string() << ";\n";
      for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
        main << "  " << t << "_temp_path " << (lb / "tmp" / t).string() << ";\n";
      }
      main << "  include " << (lb / "agentkv.conf").string() << ";\n}\n";
      argv = {binary, "-p", lb.string(), "-c", (lb / "nginx.conf").string(), "-g", "daemon off;"};
    } else {
      std::ofstream(lb / "haproxy.cfg") << config;
      argv = {binary, "-db", "-f", (lb / "haproxy.cfg").string()};
    }
    LaunchOptions launch;
    launch.output_file = lb / "output.log";
    const Launched child = Launch(argv, launch);
    if (child.pid < 0) {
      ADD_FAILURE() << child.error;
      return;
    }
    pid_ = child.pid;
    // Ready once it passes a request to a ready node.
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline && Running(pid_)) {
      httplib::Client c("127.0.0.1", port_);
      c.set_connection_timeout(std::chrono::seconds(1));
      if (httplib::Result r = c.Get("/readyz"); r && r->status == 200) return;
    }
    ADD_FAILURE() << kind << " did not pass /readyz on; see " << lb;
  }
  ~Balancer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    Reap(pid_);
  }
  int port() const { return port_; }
  // Reads the configuration again (nginx, on SIGHUP: a new worker, which
  // has not seen any node fail); returns once the old worker is gone.
  void Reload() {
    ASSERT_EQ(kind_, "nginx");
    const std::vector<pid_t> old = Workers();
    ::kill(pid_, SIGHUP);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline &&
           std::any_of(old.begin(), old.end(), [](pid_t w) { return Running(w); })) {
      std::this_thread::yield();
    }
  }

 private:
  // nginx's worker processes (children of its master).
  std::vector<pid_t> Workers() const {
    std::vector<pid_t> out;
    std::ifstream children("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) +
                           "/children");
    for (pid_t p; children >> p;) out.push_back(p);
    return out;
  }

  std::string kind_;
  int port_ = 0;
  pid_t pid_ = -1;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-cluster-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "memory");
    ASSERT_TRUE(fs::exists(LlamaServerBinary())) << "run scripts/setup.sh";
    ASSERT_TRUE(fs::exists(TestModel())) << "run scripts/setup.sh";
  }
  void TearDown() override {
    balancer_.reset();
    nodes_.clear();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts node `i` (node-<i>), on `port` if given (a restart), else a free one.
  ClusterNode& StartNode(int i, int port = 0) {
    auto node = std::make_unique<ClusterNode>("node-" + std::to_string(i),
                                              port ? port : FindFreePort(), dir_ / "memory", dir_);
    ClusterNode& n = *node;
    nodes_[i] = std::move(node);
    return n;
  }
  void StartBalancer(const std::string& kind) {
    std::vector<int> ports;
    for (auto& [i, n] : nodes_) ports.push_back(n->port());
    balancer_ = std::make_unique<Balancer>(kind, ports, dir_);
  }
  ClusterNode& node(int i) { return *nodes_.at(i); }

  // The agent's memory as the shared directory's metadata names it now:
  // tokens (0 if it has none) and state file.
  std::pair<long long, std::string> Saved(const std::string& agent) {
    std::ifstream f(dir_ / "memory" / (Sha256Hex(agent) + ".meta"));
    const json m =
        json::parse(std::string((std::istreambuf_iterator<char>(f)), {}), nullptr, false);
    if (!m.is_object()) return {0, ""};
    return {m.value("tokens", 0LL), m.value("state_file", "")};
  }
  // Polls until the shared directory holds at least `tokens` of the agent.
  void WaitSaved(const std::string& agent, long long tokens) {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Saved(agent).first < tokens && Clock::now() < deadline) std::this_thread::yield();
    ASSERT_GE(Saved(agent).first, tokens) << agent << "'s turn-end save never came";
  }
  long long Metric(int port, const std::string& name) {
    httplib::Client c("127.0.0.1", port);
    httplib::Result r = c.Get("/metrics");
    if (!r) return -1;
    std::smatch m;
    const std::regex line("\n" + name + " ([0-9]+)");
    return std::regex_search(r->body, m, line) ? std::stoll(m[1]) : -1;
  }

  fs::path dir_;
  std::map<int, std::unique_ptr<ClusterNode>> nodes_;
  std::unique_ptr<Balancer> balancer_;
};

}  // namespace agentkv::testing

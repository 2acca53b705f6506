#pragma once
// A real llama-server on the test model, started by the test, and an
// in-process agentkv in front of it, in a fresh directory per test.

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/daemon.h"
#include "integration/real_llama.h"
#include "store/sha256.h"

namespace agentkv::testing {

namespace fs = std::filesystem;
using nlohmann::json;

class RealDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-real-" + std::to_string(::getpid()) + "-" +
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

}  // namespace agentkv::testing

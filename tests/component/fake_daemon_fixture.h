#pragma once
// A Daemon in front of a FakeLlamaServer, both in-process, in a fresh memory
// directory per test.

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/daemon.h"
#include "component/fake_llama_server.h"

namespace agentkv::testing {

inline nlohmann::json Chat(const std::string& agent, const std::string& text, bool stream = false) {
  return {{"messages", {{{"role", "user"}, {"content", "agent:" + agent + "|" + text}}}},
          {"stream", stream}};
}

// Spins (yielding, no sleep) until `done` holds or 20 s pass.
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::yield();
  }
  return false;
}

class FakeDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(2); }
  void TearDown() override {
    daemon_.reset();
    fake_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(int slots, const std::function<void(DaemonOptions&)>& configure = nullptr) {
    daemon_.reset();
    fake_.reset();
    dir_ = std::filesystem::temp_directory_path() /
           ("agentkv-fake-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    fake_ = std::make_unique<FakeLlamaServer>(slots, dir_);
    Restart(configure);
  }

  // A new daemon on the same memory directory and fake llama-server.
  void Restart(const std::function<void(DaemonOptions&)>& configure = nullptr) {
    daemon_.reset();
    DaemonOptions o;
    o.proxy.port = 0;
    o.upstream.base_url = fake_->url();
    o.memory_dir = dir_;
    o.store.min_free_bytes = 0;
    o.health_interval = std::chrono::milliseconds(5);
    if (configure) configure(o);
    Result<std::unique_ptr<Daemon>> d = Daemon::Start(o);
    ASSERT_TRUE(d.ok()) << d.status().message();
    daemon_ = std::move(d.value());
    calls_at_start_ = fake_->calls().size();  // past the start's save probe
  }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", daemon_->port());
    c.set_read_timeout(std::chrono::seconds(30));
    return c;
  }

  httplib::Result Post(const std::string& path, const nlohmann::json& body,
                       const httplib::Headers& headers = {}) {
    return Client().Post(path, headers, body.dump(), "application/json");
  }

  // POSTs a streaming chat turn for `agent`, handing each piece of the
  // answer to `receive` (return false to hang up).
  httplib::Result Stream(const std::string& agent,
                         std::function<bool(const char*, size_t)> receive) {
    httplib::Client c = Client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/agents/" + agent + "/v1/chat/completions";
    req.body = Chat(agent, "x", true).dump();
    req.headers.emplace("Content-Type", "application/json");
    req.content_receiver = [receive](const char* data, size_t n, uint64_t, uint64_t) {
      return receive(data, n);
    };
    return c.send(req);
  }

  // Sends one chat turn for `agent` and returns its placement header.
  std::string Turn(const std::string& agent, const std::string& text = "hello") {
    httplib::Result r = Post("/agents/" + agent + "/v1/chat/completions", Chat(agent, text));
    EXPECT_TRUE(r) << httplib::to_string(r.error());
    if (!r) return "";
    EXPECT_EQ(r->status, 200) << r->body;
    return r->get_header_value("X-Agentkv-Placement");
  }

  // Calls of `route` since the daemon started.
  int CountCalls(const std::string& route) const {
    const auto calls = fake_->calls();
    int n = 0;
    for (size_t i = calls_at_start_; i < calls.size(); ++i) n += calls[i].route == route ? 1 : 0;
    return n;
  }

  std::filesystem::path dir_;
  std::unique_ptr<FakeLlamaServer> fake_;
  std::unique_ptr<Daemon> daemon_;
  size_t calls_at_start_ = 0;
};

}  // namespace agentkv::testing

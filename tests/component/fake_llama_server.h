#pragma once
// An in-process stand-in for llama-server, for the faults the real one cannot
// produce on demand. It models each slot's KV as the text it last processed,
// so tests can see whose KV a request ran on. A prompt of token ids is the
// text whose character codes they are. Bound to 127.0.0.1, port 0
// unless given. Thread-safe.

#include <httplib.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace agentkv::testing {

class FakeLlamaServer {
 public:
  FakeLlamaServer(int slots, std::filesystem::path save_dir, int port = 0);
  ~FakeLlamaServer();

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Fault knobs.
  void FailNextRestore() {
    Set([&] { fail_restores_++; });
  }
  void FailNextSave() {
    Set([&] { fail_saves_++; });
  }
  void FailErases(bool fail) {
    Set([&] { fail_erases_ = fail; });
  }
  // The next restore answers success but leaves the slot empty (an upstream
  // bug agentkv must catch from the response's cache_n).
  void HollowNextRestore() {
    Set([&] { hollow_restores_++; });
  }
  // Slot saves wait, unanswered, while hung (a llama-server shutting down).
  void HangSaves(bool hang) {
    Set([&] { hang_saves_ = hang; });
  }
  // /health answers 503 while unhealthy.
  void SetHealthy(bool healthy) {
    Set([&] { healthy_ = healthy; });
  }
  // Every slot's KV is gone, as after a restart.
  void LoseAllKv() {
    Set([&] {
      for (auto& kv : kv_) kv.clear();
    });
  }
  // Makes every stream pause before chunk `index` until Resume().
  void HoldStreamsAt(int index) {
    Set([&] {
      hold_at_ = index;
      held_ = false;
    });
  }
  void Resume() {
    Set([&] { hold_at_ = -1; });
  }
  // Blocks until a stream is held (true), or `timeout` passed (false).
  bool WaitHeld(std::chrono::seconds timeout);
  // Blocks until a stream ended because its reader left (true), or timeout.
  bool WaitCancelled(std::chrono::seconds timeout);
  // Chunks a stream sends between the role chunk and the final one.
  void SetStreamChunks(int n) {
    Set([&] { stream_chunks_ = n; });
  }
  // The finish_reason answers give ("stop", "tool_calls"...); none if "".
  void SetFinishReason(const std::string& reason) {
    Set([&] { finish_reason_ = reason; });
  }

  // Observations.
  struct Call {
    std::string route;  // "completion", "save", "restore", "erase", or a global route's path
    int slot = -1;
    std::string agent;  // the prompt's "agent:<id>|" tag, if any
    std::string body;   // of a completion, as received
  };
  std::vector<Call> calls() const;
  // Requests that ran on a slot holding another agent's KV.
  std::vector<std::string> violations() const;
  std::string last_body() const;
  std::string last_authorization() const;
  // A header of the last completion request; "(absent)" if it had none.
  std::string last_header(const std::string& name) const;
  int health_checks() const;

 private:
  void Set(const std::function<void()>& f);
  void Completion(const httplib::Request& req, httplib::Response& res);
  void SlotAction(const httplib::Request& req, httplib::Response& res);

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  const std::filesystem::path save_dir_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::string> kv_;  // per slot: the text its KV holds
  std::vector<Call> calls_;
  std::vector<std::string> violations_;
  std::string last_body_;
  std::string last_authorization_;
  httplib::Headers last_headers_;
  int fail_restores_ = 0;
  int fail_saves_ = 0;
  bool fail_erases_ = false;
  int hollow_restores_ = 0;
  bool healthy_ = true;
  bool hang_saves_ = false;
  int health_checks_ = 0;
  int hold_at_ = -1;
  bool held_ = false;
  int cancelled_ = 0;
  int stream_chunks_ = 3;
  std::string finish_reason_;
};

}  // namespace agentkv::testing

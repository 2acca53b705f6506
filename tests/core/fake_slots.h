#pragma once
// An in-memory llama-server for placer tests: slots hold a token count, and a
// saved file holds that count as text. Errors queued per action are returned
// by the next calls, in order. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agentkv/slot_actions.h"

namespace agentkv {

class FakeSlots : public SlotActions {
 public:
  FakeSlots(std::filesystem::path dir, int slots)
      : dir_(std::move(dir)), tokens_(static_cast<size_t>(slots)) {}

  Result<SlotActionResult> SaveSlot(SlotId slot, const std::string& filename) override {
    std::lock_guard<std::mutex> lock(mu_);
    Record("save " + std::to_string(slot.value));
    const long long n = tokens_.at(static_cast<size_t>(slot.value));
    std::ofstream(dir_ / filename) << "tokens=" << n;
    return SlotActionResult{n, 10, 1};
  }
  Result<SlotActionResult> RestoreSlot(SlotId slot, const std::string& filename) override {
    std::lock_guard<std::mutex> lock(mu_);
    Record("restore " + std::to_string(slot.value));
    long long& kv = tokens_.at(static_cast<size_t>(slot.value));
    if (Status s = Next(restore_errors_); !s.ok()) {
      kv = 0;  // as llama-server does on a failed restore
      return s;
    }
    std::ifstream in(dir_ / filename);
    std::string text;
    in >> text;
    kv = std::stoll(text.substr(7));
    return SlotActionResult{kv, 10, 1};
  }
  Status EraseSlot(SlotId slot) override {
    std::lock_guard<std::mutex> lock(mu_);
    Record("erase " + std::to_string(slot.value));
    tokens_.at(static_cast<size_t>(slot.value)) = 0;
    return Status::Ok();
  }

  // A request ran on `slot`: its KV now holds `n` tokens.
  void Fill(SlotId slot, long long n) {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.at(static_cast<size_t>(slot.value)) = n;
  }
  long long TokensIn(SlotId slot) {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_.at(static_cast<size_t>(slot.value));
  }
  void FailRestores(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    restore_errors_.push_back(std::move(s));
  }
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // Waits up to `timeout` for a call named `call`; returns when it began.
  std::optional<std::chrono::steady_clock::time_point> WaitFor(const std::string& call,
                                                               std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<std::chrono::steady_clock::time_point> at;
    called_.wait_for(lock, timeout, [&] {
      for (size_t i = 0; i < calls_.size(); ++i) {
        if (calls_[i] == call) at = call_times_[i];
      }
      return at.has_value();
    });
    return at;
  }

 private:
  void Record(std::string call) {  // mu_ held
    calls_.push_back(std::move(call));
    call_times_.push_back(std::chrono::steady_clock::now());
    called_.notify_all();
  }
  static Status Next(std::deque<Status>& q) {
    if (q.empty()) return Status::Ok();
    Status s = q.front();
    q.pop_front();
    return s;
  }

  const std::filesystem::path dir_;
  std::mutex mu_;
  std::vector<long long> tokens_;
  std::deque<Status> restore_errors_;
  std::vector<std::string> calls_;
  std::vector<std::chrono::steady_clock::time_point> call_times_;
  std::condition_variable called_;
};

}  // namespace agentkv

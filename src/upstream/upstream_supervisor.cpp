#include "upstream/upstream_supervisor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "upstream/exit_text.h"

namespace agentkv {

namespace {

constexpr auto kHealthPoll = std::chrono::milliseconds(100);

Status ExitedDuringStartup(int wait_status) {
  return Status::Error(ErrorCode::kUpstreamDown, "llama-server " + DescribeExit(wait_status) +
                                                     " during startup; see its log");
}

}  // namespace

Status AwaitHealthy(ChildProcess* child, const HealthCheck& health, WaitClock& clock,
                    WaitClock::TimePoint deadline, const std::function<bool()>& stopping) {
  Status last = Status::Error(ErrorCode::kUpstreamDown, "llama-server did not answer");
  for (;;) {
    if (stopping && stopping()) {
      return Status::Error(ErrorCode::kUpstreamDown, "agentkv is stopping");
    }
    int wait_status = 0;
    if (child != nullptr && child->Exited(&wait_status)) return ExitedDuringStartup(wait_status);
    last = health();
    if (last.ok()) return last;
    const WaitClock::TimePoint now = clock.Now();
    if (now >= deadline) break;
    clock.WaitUntil(std::min(now + kHealthPoll, deadline));
  }
  if (child == nullptr) return last;
  child->Stop(std::chrono::seconds(1));
  return Status::Error(ErrorCode::kUpstreamDown, "llama-server did not become ready");
}

// Owned by the watch thread; nobody else reads it.
struct UpstreamSupervisor::WatchState {
  bool was_down = false;
  int restarts_in_a_row = 0;
  // When llama-server last came back from a restart, or a check last found
  // it down: a healthy minute is counted from there.
  WaitClock::TimePoint unhealthy_at;
};

UpstreamSupervisor::UpstreamSupervisor(SupervisorOptions options,
                                       std::unique_ptr<ChildProcess> child, HealthCheck health,
                                       std::unique_ptr<WaitClock> clock, SupervisorEvents events)
    : options_(std::move(options)),
      child_(std::move(child)),
      health_(std::move(health)),
      clock_(std::move(clock)),
      events_(std::move(events)) {}

UpstreamSupervisor::~UpstreamSupervisor() { Stop(); }

Status UpstreamSupervisor::Start(std::chrono::seconds timeout) {
  Status s = StartChild(timeout);
  if (s.ok()) SetUp(true);
  return s;
}

Status UpstreamSupervisor::StartChild(std::chrono::seconds timeout) {
  if (child_) {
    if (Status s = child_->Spawn(); !s.ok()) return s;
  }
  return AwaitHealthy(child_.get(), health_, *clock_, clock_->Now() + timeout,
                      [this] { return Stopping(); });
}

void UpstreamSupervisor::Watch() {
  MutexLock lock(mu_);
  if (stopping_) return;
  watch_idle_ = false;
  watch_ = std::thread([this] { WatchLoop(); });
}

void UpstreamSupervisor::WatchLoop() {
  WatchState state;
  state.unhealthy_at = clock_->Now();
  while (Pause(options_.health_interval)) {
    CheckOnce(&state);
    if (events_.alive) events_.alive();
  }
  {
    MutexLock lock(mu_);
    watch_idle_ = true;
  }
  watch_idle_cv_.notify_all();
  StopChildWhenAsked();
}

bool UpstreamSupervisor::Pause(std::chrono::milliseconds how_long) {
  const WaitClock::TimePoint until = clock_->Now() + how_long;
  auto interrupted = [this] {
    MutexLock lock(mu_);
    return stopping_ || std::exchange(check_now_, false);
  };
  while (!interrupted() && clock_->Now() < until) clock_->WaitUntil(until);
  return !Stopping();
}

void UpstreamSupervisor::Suspect() {
  {
    MutexLock lock(mu_);
    if (!up_) return;  // known down already: the watch is on it
    up_ = false;
    check_now_ = true;
  }
  spdlog::warn("a request could not reach llama-server: checking it now");
  clock_->Wake();
}

// A llama-server that was down and answers again has lost every slot's KV.
void UpstreamSupervisor::CheckOnce(WatchState* state) {
  bool up = child_ ? Supervise(state) : true;
  if (Stopping()) return;  // a restart abandoned: nothing to report
  up = up && health_().ok();
  if (!up && !state->was_down) spdlog::warn("llama-server at {} is down", options_.url);
  if (up && state->was_down) events_.lost_kv("llama-server came back after being down");
  const WaitClock::TimePoint now = clock_->Now();
  if (up && state->restarts_in_a_row > 0 && now - state->unhealthy_at > std::chrono::minutes(1)) {
    state->restarts_in_a_row = 0;  // healthy for a minute: a fresh budget
  }
  if (!up) state->unhealthy_at = now;
  SetUp(up);
  state->was_down = !up;
}

bool UpstreamSupervisor::Supervise(WatchState* state) {
  int wait_status = 0;
  if (!child_->Exited(&wait_status)) return true;
  const std::string how = DescribeExit(wait_status);
  spdlog::error("llama-server {}{}", how,
                state->restarts_in_a_row == 0 ? "" : " again, soon after a restart");
  SetProblem("llama-server " + how);
  SetUp(false);
  events_.lost_kv("llama-server exited");
  int& restarts = state->restarts_in_a_row;
  while (restarts < options_.max_restarts) {
    const auto backoff = std::chrono::seconds(1 << std::min(restarts, 5));
    ++restarts;
    if (!Pause(backoff)) return false;
    spdlog::info("restarting llama-server (attempt {} of {})", restarts, options_.max_restarts);
    events_.restarting();
    const Status s = StartChild(options_.ready_timeout);
    if (s.ok()) {
      state->unhealthy_at = clock_->Now();
      return true;
    }
    if (Stopping()) return false;
    spdlog::error("llama-server restart failed: {}", s.message());
    SetProblem(s.message());
  }
  const std::string last = Problem();
  // Set before the log line says so: whoever reads the log may ask /readyz.
  SetProblem("gave up after " + std::to_string(options_.max_restarts) +
             " restarts in a row; the last: " + last);
  spdlog::error(
      "llama-server failed {} times in a row: not restarting it again; requests "
      "get 503 until agentkv is restarted. Last: {}",
      options_.max_restarts, last);
  return false;
}

void UpstreamSupervisor::StopChildWhenAsked() {
  std::chrono::seconds grace;
  {
    MutexLock lock(mu_);
    stop_child_cv_.wait(lock, [&]() REQUIRES(mu_) { return stop_grace_.has_value(); });
    grace = *stop_grace_;
  }
  if (child_) child_->Stop(grace);
}

void UpstreamSupervisor::SetProblem(std::string why) {
  MutexLock lock(mu_);
  problem_ = std::move(why);
}

std::string UpstreamSupervisor::Problem() const {
  MutexLock lock(mu_);
  return problem_;
}

void UpstreamSupervisor::SetUp(bool up) {
  {
    MutexLock lock(mu_);
    up_ = up;
    if (up) problem_.clear();
  }
  up_cv_.notify_all();
}

bool UpstreamSupervisor::IsUp() const {
  MutexLock lock(mu_);
  return up_;
}

bool UpstreamSupervisor::Stopping() const {
  MutexLock lock(mu_);
  return stopping_;
}

bool UpstreamSupervisor::WaitUp(std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  up_cv_.wait_for(lock, timeout, [&]() REQUIRES(mu_) { return up_ || stopping_; });
  return up_;
}

void UpstreamSupervisor::BeginStop(std::optional<std::chrono::seconds> grace) {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    if (grace && !stop_grace_) stop_grace_ = grace;
  }
  up_cv_.notify_all();
  stop_child_cv_.notify_all();
  clock_->Wake();
}

void UpstreamSupervisor::StopWatching(std::chrono::steady_clock::time_point deadline) {
  BeginStop(std::nullopt);
  MutexLock lock(mu_);
  watch_idle_cv_.wait_until(lock, deadline, [&]() REQUIRES(mu_) { return watch_idle_; });
}

void UpstreamSupervisor::Stop(std::chrono::seconds grace) {
  std::call_once(stop_once_, [&] {
    BeginStop(grace);
    if (watch_.joinable()) {
      watch_.join();  // the watch stops the child itself
    } else if (child_) {
      child_->Stop(grace);
    }
  });
}

}  // namespace agentkv

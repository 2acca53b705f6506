#pragma once
// Keeps llama-server serving: starts the child agentkv launched (if any),
// checks its health on a schedule, restarts it with a backoff when it dies,
// and keeps the up/down gate requests wait on while it is down.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>  // std::once_flag
#include <optional>
#include <string>
#include <thread>

#include "agentkv/child_process.h"
#include "agentkv/mutex.h"
#include "agentkv/status.h"
#include "agentkv/wait_clock.h"

namespace agentkv {

// OK when llama-server answers /health with 200 (Upstream::Health). May
// block on the network, within its own timeouts.
using HealthCheck = std::function<Status()>;

// Polls `health` until it answers OK and returns OK. Returns early with
// kUpstreamDown when `child` (may be null: nothing to watch) exits first or
// `stopping` (may be empty) turns true. At `deadline` returns health's last
// error, or with a child kUpstreamDown after stopping it. Blocks; waits on
// `clock`, whose Wake() makes it look at `stopping` at once.
Status AwaitHealthy(ChildProcess* child, const HealthCheck& health, WaitClock& clock,
                    WaitClock::TimePoint deadline, const std::function<bool()>& stopping);

struct SupervisorOptions {
  std::string url;  // llama-server's, for logs
  // How often to check llama-server's health (to notice restarts).
  std::chrono::milliseconds health_interval{1000};
  // A child that dies is restarted, with a backoff, at most this many
  // times in a row without a healthy minute in between.
  int max_restarts = 5;
  // How long a (re)started child may take to answer /health.
  std::chrono::seconds ready_timeout{300};
};

// What the supervisor tells the rest of agentkv; both must be set. Called
// from the watch thread, never under the supervisor's lock.
struct SupervisorEvents {
  // llama-server lost every slot's KV (it exited, or came back after being
  // down); `why` is for the log.
  std::function<void(const char* why)> lost_kv;
  // A restart of the child begins (counted in the metrics).
  std::function<void()> restarting;
  // The watch loop ran a check (systemd's watchdog); null: nothing.
  std::function<void()> alive;
};

// Thread-safe, except that Start() and Watch() are called once, in that
// order, by the thread that wires agentkv, before any Stop(). From Watch()
// on, the child is driven by the watch thread alone, which also stops it: a
// child restarted from that thread gets SIGKILL when the thread exits
// (PR_SET_PDEATHSIG), so the thread outlives it.
class UpstreamSupervisor {
 public:
  // `child` is null when llama-server is not ours: it is then only watched.
  UpstreamSupervisor(SupervisorOptions options, std::unique_ptr<ChildProcess> child,
                     HealthCheck health, std::unique_ptr<WaitClock> clock, SupervisorEvents events);
  UpstreamSupervisor(const UpstreamSupervisor&) = delete;
  UpstreamSupervisor& operator=(const UpstreamSupervisor&) = delete;
  ~UpstreamSupervisor();  // Stop() with its default grace

  // Starts the child (if any) and blocks until llama-server is healthy or
  // `timeout` passes; the gate is then up. Returns the child's start error,
  // kUpstreamDown if it exits or is not ready in time (it is then stopped),
  // or the last health error of a llama-server that is not ours.
  Status Start(std::chrono::seconds timeout);
  // Starts the watch thread: health checks every health_interval, restarts.
  void Watch();

  bool IsUp() const;
  // Why llama-server is down, when the supervisor knows (it exited, and how;
  // a restart failed; the restarts were given up): for /readyz and the
  // status page. Empty while it is up or nothing is known.
  std::string Problem() const;
  // A request could not reach llama-server: the gate is down until a health
  // check says otherwise, and the watch runs that check (and a restart if
  // the child died) now rather than at its next interval. WaitUp() callers
  // then wait for the outcome instead of failing against a dead upstream.
  void Suspect();
  // Returns true at once if llama-server is up, else blocks until it is or
  // `timeout` (real time: a request's bound) passes or Stop begins; returns
  // whether it is up then.
  bool WaitUp(std::chrono::milliseconds timeout);

  // Ends health checks and restarts (a restart under way is abandoned) and
  // releases WaitUp() callers. Blocks until the watch has left its loop or
  // `deadline` passes. A llama-server that runs keeps running: agents are
  // still saved into it.
  void StopWatching(std::chrono::steady_clock::time_point deadline);
  // Ends the watch as StopWatching() does, then stops the child (SIGTERM,
  // SIGKILL after `grace`) and ends the watch thread. Blocks until both are
  // done, without a deadline of its own: the watch's step under way (a
  // health check, or an event handler) and the child's exit bound the wait.
  // Idempotent.
  void Stop(std::chrono::seconds grace = std::chrono::seconds(10));

  // The child's process id, or -1.
  pid_t child_pid() const { return child_ ? child_->pid() : -1; }

 private:
  struct WatchState;  // the watch thread's own
  void WatchLoop();
  // Waits `how_long` on the clock; false if Stop began.
  bool Pause(std::chrono::milliseconds how_long);
  void CheckOnce(WatchState* state);
  // Restarts the child if it died; true if it runs (again).
  bool Supervise(WatchState* state);
  Status StartChild(std::chrono::seconds timeout);
  void StopChildWhenAsked();
  // Sets stopping_ (and the child's grace, once) and wakes every waiter.
  void BeginStop(std::optional<std::chrono::seconds> grace);
  void SetUp(bool up);  // clears the problem when up
  void SetProblem(std::string why);
  bool Stopping() const;

  const SupervisorOptions options_;
  const std::unique_ptr<ChildProcess> child_;
  const HealthCheck health_;
  const std::unique_ptr<WaitClock> clock_;
  const SupervisorEvents events_;
  std::thread watch_;
  std::once_flag stop_once_;

  mutable Mutex mu_;
  std::condition_variable_any up_cv_;          // up_ or stopping_ changed
  std::condition_variable_any watch_idle_cv_;  // watch_idle_ turned true
  std::condition_variable_any stop_child_cv_;  // stop_grace_ was set
  bool up_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool watch_idle_ GUARDED_BY(mu_) = true;  // no watch loop runs
  bool check_now_ GUARDED_BY(mu_) = false;  // Suspect() asked for a check
  std::string problem_ GUARDED_BY(mu_);
  std::optional<std::chrono::seconds> stop_grace_ GUARDED_BY(mu_);
};

}  // namespace agentkv

// agentkv: durable per-agent KV memory in front of llama-server.
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <thread>

#include "app/cli.h"
#include "app/daemon.h"
#include "app/logging.h"
#include "app/status_command.h"
#include "app/systemd_notify.h"

namespace {

constexpr int kExitConfig = 78;  // EX_CONFIG (sysexits.h)

// Blocks until one of `set` arrives. Signals are blocked in every thread
// (the mask is inherited), so only this sigwait sees them.
int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

// As WaitForSignal, but returns 0 once `timeout` has passed.
int WaitForSignal(const sigset_t& set, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return 0;
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(left);
    const timespec ts{static_cast<time_t>(s.count()),
                      static_cast<long>(std::chrono::nanoseconds(left - s).count())};
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno != EINTR && errno != EAGAIN) return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace agentkv;
  // A thread per connection would otherwise get glibc arenas of its own (up
  // to 8 per core), each keeping what it freed: the soak's RSS grew 0.29 MB
  // a minute with them and stayed flat with 2 (bench/results/.../soak/).
  // MALLOC_ARENA_MAX in the environment still wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
  CliSettings cli;
  if (int code = ParseCommandLine(argc, argv, &cli); code >= 0) return code;
  if (cli.command == CliSettings::Command::kStatus) {
    return RunStatus(cli.status, std::cout, std::cerr);
  }
  ConfigureLogging(cli.log_level, cli.log_format, systemd::StderrIsJournal());
  cli.daemon.on_alive = &systemd::Alive;
  const DaemonOptions& o = cli.daemon;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the stop below has finished
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Under a Type=notify unit: the start lasts as long as the model takes
  // to load, 30 s at a time, and ends with READY=1.
  systemd::Status("starting llama-server and loading the model");
  std::mutex starting_mu;
  std::condition_variable started_cv;
  bool started = false;
  std::thread extender([&] {
    std::unique_lock<std::mutex> lock(starting_mu);
    do {
      systemd::ExtendTimeout(std::chrono::seconds(30));
    } while (!started_cv.wait_for(lock, std::chrono::seconds(10), [&] { return started; }));
  });
  Result<std::unique_ptr<Daemon>> daemon = Daemon::Start(o);
  {
    std::lock_guard<std::mutex> lock(starting_mu);
    started = true;
  }
  started_cv.notify_all();
  extender.join();
  if (!daemon.ok()) {
    systemd::Status("failed to start: " + daemon.status().message());
    spdlog::error("{}", daemon.status().message());
    // What only a change of settings or of the machine mends (no model, no
    // llama-server, the port taken, a directory another agentkv holds):
    // EX_CONFIG, which the unit does not restart (RestartPreventExitStatus).
    const ErrorCode code = daemon.status().code();
    return code == ErrorCode::kInvalidArgument || code == ErrorCode::kConflict ? kExitConfig : 1;
  }
  systemd::Ready("serving on " + o.proxy.host + ":" + std::to_string(daemon.value()->port()));
  int sig = 0;
  while ((sig = WaitForSignal(signals)) == SIGUSR1) {
  }
  spdlog::info("received signal {}, shutting down within {} s (again to exit at once)", sig,
               o.stop_timeout.count());
  systemd::Stopping("draining requests and saving agents");
  int unsaved = 0;
  std::thread stopper([&] {
    unsaved = daemon.value()->Stop();
    ::kill(::getpid(), SIGUSR1);
  });
  // The stop bounds each step; this bounds what no step could (a handler
  // stuck in a call that started before the stop).
  const int next = WaitForSignal(signals, o.stop_timeout + std::chrono::seconds(5));
  if (next == 0) {
    spdlog::error("the stop took longer than --stop-timeout: exiting now");
    std::_Exit(1);  // llama-server follows: it dies with its parent
  }
  if (next != SIGUSR1) {
    spdlog::warn("second signal: exiting without waiting for requests in flight");
    std::_Exit(130);
  }
  stopper.join();
  spdlog::info("stopped{}", unsaved > 0 ? " with unsaved agents" : "");
  return unsaved > 0 ? 1 : 0;
}

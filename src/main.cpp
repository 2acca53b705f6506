// agentkv: durable per-agent KV memory in front of llama-server.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "agentkv/daemon.h"
#include "cli.h"
#include "logging.h"

namespace {

// Blocks until one of `set` arrives. Signals are blocked in every thread
// (the mask is inherited), so only this sigwait sees them.
int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace agentkv;
  CliSettings cli;
  if (int code = ParseCommandLine(argc, argv, &cli); code >= 0) return code;
  ConfigureLogging(cli.log_level, cli.log_format);
  const DaemonOptions& o = cli.daemon;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the stop below has finished
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Result<std::unique_ptr<Daemon>> daemon = Daemon::Start(o);
  if (!daemon.ok()) {
    spdlog::error("{}", daemon.status().message());
    return 1;
  }
  int sig = 0;
  while ((sig = WaitForSignal(signals)) == SIGUSR1) {
  }
  spdlog::info("received signal {}, shutting down (again to exit at once)", sig);
  std::thread stopper([&] {
    daemon.value()->Stop();
    ::kill(::getpid(), SIGUSR1);
  });
  if (WaitForSignal(signals) != SIGUSR1) {
    spdlog::warn("second signal: exiting without waiting for requests in flight");
    std::_Exit(130);  // llama-server follows: it dies with its parent
  }
  stopper.join();
  return 0;
}

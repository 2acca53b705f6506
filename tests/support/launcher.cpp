#include "support/launcher.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace agentkv::testing {
namespace {

// The test's environment with `changes` applied ("NAME=VALUE" sets, "NAME" removes).
std::vector<std::string> Environment(const std::vector<std::string>& changes) {
  std::vector<std::string> out;
  auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const std::string& c : changes) replaced = replaced || name_of(c) == name_of(entry);
    if (!replaced) out.push_back(entry);
  }
  for (const std::string& c : changes) {
    if (c.find('=') != std::string::npos) out.push_back(c);
  }
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

Launched Launch(const std::vector<std::string>& argv, const LaunchOptions& options) {
  Launched launched;
  if (argv.empty()) {
    launched.error = "nothing to run";
    return launched;
  }
  int out[2] = {-1, -1}, in[2] = {-1, -1};
  if ((options.pipe_output && ::pipe2(out, O_CLOEXEC) != 0) ||
      (options.pipe_input && ::pipe2(in, O_CLOEXEC) != 0)) {
    launched.error = std::string("pipe: ") + std::strerror(errno);
    for (int fd : {out[0], out[1], in[0], in[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return launched;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 leaves the new descriptor open across exec; the pipe's own ends
  // are close-on-exec.
  if (options.pipe_output) {
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
  } else if (!options.output_file.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.output_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  if (options.pipe_input) posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  if (options.own_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);

  std::vector<std::string> args = argv;
  std::vector<std::string> env = Environment(options.env);
  std::vector<char*> arg_pointers = Pointers(args), env_pointers = Pointers(env);
  pid_t pid = -1;
  const int failed = ::posix_spawnp(&pid, args[0].c_str(), &actions, &attr, arg_pointers.data(),
                                    env_pointers.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  // The child's ends: it has its own copies now.
  if (out[1] >= 0) ::close(out[1]);
  if (in[0] >= 0) ::close(in[0]);
  if (failed != 0) {
    launched.error = argv[0] + ": " + std::strerror(failed);
    if (out[0] >= 0) ::close(out[0]);
    if (in[1] >= 0) ::close(in[1]);
    return launched;
  }
  launched.pid = pid;
  launched.output = out[0];
  launched.input = in[1];
  return launched;
}

Finished RunToEnd(const std::vector<std::string>& argv, const std::string& input) {
  Finished finished;
  LaunchOptions options;
  options.pipe_output = true;
  options.pipe_input = true;
  Launched child = Launch(argv, options);
  if (child.pid < 0) {
    finished.output = child.error;
    return finished;
  }
  // Written beside the reading, so that neither side waits on a full pipe.
  std::thread writer([fd = child.input, &input] {
    // A child that stops reading makes write fail with EPIPE; the signal
    // that comes with it is held in this thread, and dropped when it ends.
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    for (std::size_t at = 0; at < input.size();) {
      const ssize_t n = ::write(fd, input.data() + at, input.size() - at);
      if (n <= 0) break;  // it stopped reading
      at += static_cast<std::size_t>(n);
    }
    ::close(fd);
  });
  char buf[4096];
  for (ssize_t n; (n = ::read(child.output, buf, sizeof buf)) > 0;) {
    finished.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(child.output);
  writer.join();
  finished.status = Reap(child.pid);
  return finished;
}

int Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

pid_t EndedPid() {
  const Launched child = Launch({"true"});
  if (child.pid > 0) Reap(child.pid);
  return child.pid;
}

}  // namespace agentkv::testing

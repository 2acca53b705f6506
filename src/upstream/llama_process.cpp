#include "upstream/llama_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "agentkv/errno_text.h"
#include "upstream/child_record.h"
#include "upstream/listen_owner.h"
#include "upstream/upstream.h"
#include "upstream/upstream_supervisor.h"

namespace agentkv {

namespace fs = std::filesystem;

int FindFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::vector<std::string> LlamaProcess::Arguments(const LlamaProcessOptions& o, int port) {
  std::vector<std::string> args = {o.binary.string(), "--model", o.model.string(), "--host",
                                   "127.0.0.1", "--port", std::to_string(port), "--parallel",
                                   std::to_string(o.slots),
                                   // llama-server appends file names to this path as is.
                                   "--slot-save-path", (o.memory_dir / "").string(),
                                   // agentkv owns placement: llama-server must neither keep its own
                                   // RAM copies of idle slots nor clear them behind agentkv's back.
                                   "--cache-ram", "0", "--no-cache-idle-slots"};
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  return args;
}

LlamaProcess::LlamaProcess(LlamaProcessOptions options) : options_(std::move(options)) {
  PickPort();
}

void LlamaProcess::PickPort() {
  if (port_ == 0) port_ = options_.port > 0 ? options_.port : FindFreePort();
}

Status LlamaProcess::Start(const LlamaProcessOptions& options) {
  options_ = options;
  if (Status s = Spawn(); !s.ok()) return s;
  UpstreamOptions health;
  health.base_url = base_url();
  health.connect_timeout = std::chrono::seconds(2);
  health.read_timeout = std::chrono::seconds(10);
  Upstream upstream(health);
  SteadyWaitClock clock;
  return AwaitHealthy(
      this, [this, &upstream] { return CheckHealth(upstream); }, clock,
      clock.Now() + options.ready_timeout, nullptr);
}

Status LlamaProcess::CheckHealth(Upstream& upstream) const {
  if (Status s = upstream.Health(); !s.ok()) return s;
  const pid_t pid = pid_;
  Result<bool> ours = ListensOn(pid, port_);
  if (!ours.ok() || ours.value()) return Status::Ok();
  return Status::Error(ErrorCode::kUpstreamDown,
                       "port " + std::to_string(port_) + " is not held by llama-server (pid " +
                           std::to_string(pid) + "): another process answers on it");
}

namespace {

// The environment llama-server starts with: agentkv's own, and its key.
// Built before fork: the child may only call async-signal-safe functions.
std::vector<std::string> ChildEnvironment(const std::string& api_key) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    // A key from agentkv's environment must not override the one it gives.
    if (entry.rfind("LLAMA_API_KEY=", 0) == 0 || entry.rfind("LLAMA_ARG_API_KEY_FILE=", 0) == 0) {
      continue;
    }
    env.push_back(entry);
  }
  if (!api_key.empty()) env.push_back("LLAMA_API_KEY=" + api_key);
  return env;
}

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

Status LlamaProcess::Spawn() {
  const LlamaProcessOptions& o = options_;
  if (!fs::exists(o.binary)) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "llama-server not found at " + o.binary.string() +
                             " (run scripts/setup.sh, or pass --llama-server)");
  }
  if (!fs::exists(o.model)) {
    return Status::Error(ErrorCode::kInvalidArgument, "model not found: " + o.model.string());
  }
  PickPort();
  const std::vector<std::string> args = Arguments(o, port_);
  const std::vector<std::string> env = ChildEnvironment(o.api_key);
  std::vector<char*> argv = Pointers(args), envp = Pointers(env);
  const long open_max = ::sysconf(_SC_OPEN_MAX);
  const int max_fd = open_max > 0 && open_max < (1 << 20) ? static_cast<int>(open_max) : (1 << 16);

  // Its output goes to a file, or through a pipe into agentkv's own log.
  int log_fd = -1, pipe_fds[2] = {-1, -1};
  if (!o.log_file.empty()) {
    log_fd = ::open(o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      return Status::Error(ErrorCode::kIo,
                           "cannot open " + o.log_file.string() + ": " + ErrnoText(errno));
    }
  } else if (::pipe2(pipe_fds, O_CLOEXEC) == 0) {
    log_fd = pipe_fds[1];
  }
  if (output_reader_.joinable()) output_reader_.join();  // a previous run's
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Child: die with agentkv, whatever kills it. SIGKILL, not SIGTERM: a
    // llama-server can hang in its own SIGTERM handler, and a killed agentkv
    // needs nothing graceful from it (a save cut short is never renamed
    // into place).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Its own process group: a signal to agentkv's group (Ctrl-C, kill --
    // -PGID) must reach agentkv alone, which saves agents into this server
    // before it stops it.
    ::setpgid(0, 0);
    // agentkv blocks SIGTERM/SIGINT for its sigwait and ignores SIGPIPE;
    // both would survive exec.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // NOLINT(concurrency-mt-unsafe)
    // The child runs one thread until exec.
    ::signal(SIGPIPE, SIG_DFL);  // NOLINT(concurrency-mt-unsafe)
    // The slot files it writes hold conversations: its own user's alone.
    ::umask(077);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    // Nothing else of agentkv's: its clients' sockets (httplib does not
    // accept them close-on-exec) would stay open in a restarted server.
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
      for (int fd = 3; fd < max_fd; ++fd) ::close(fd);  // kernels before 5.9
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (pid_ > 0) ::setpgid(pid_, pid_);  // the child does too: whichever runs first
  if (log_fd >= 0) ::close(log_fd);
  if (pipe_fds[0] >= 0) {
    output_reader_ = std::thread([fd = pipe_fds[0]] {
      FILE* in = ::fdopen(fd, "r");
      char line[8192];
      while (in && std::fgets(line, sizeof line, in)) {
        size_t n = std::strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n > 0) spdlog::info("llama-server: {}", line);
      }
      if (in) std::fclose(in);
    });
  }
  if (pid_ < 0) {
    return Status::Error(ErrorCode::kIo, std::string("fork: ") + ErrnoText(errno));
  }
  if (!o.record_file.empty()) {
    if (Status s = WriteChildRecord(o.record_file, pid_); !s.ok()) {
      spdlog::warn(
          "cannot record llama-server's pid ({}): a llama-server that outlives this "
          "agentkv will not be found by the next one",
          s.message());
    }
  }
  spdlog::info("started llama-server (pid {}) on port {}", pid_, port_);
  return Status::Ok();
}

void LlamaProcess::Stop(std::chrono::seconds grace) {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    int wstatus = 0;
    while (::waitpid(pid_, &wstatus, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        spdlog::warn("llama-server (pid {}) ignored SIGTERM; killing it", pid_);
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &wstatus, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    spdlog::info("llama-server (pid {}) stopped", pid_);
    pid_ = -1;
    if (!options_.record_file.empty()) RemoveChildRecord(options_.record_file);
  }
  if (output_reader_.joinable()) output_reader_.join();
}

bool LlamaProcess::Exited(int* wait_status) {
  if (pid_ <= 0) return false;
  if (::waitpid(pid_, wait_status, WNOHANG) != pid_) return false;
  pid_ = -1;
  if (!options_.record_file.empty()) RemoveChildRecord(options_.record_file);
  if (output_reader_.joinable()) output_reader_.join();
  return true;
}

}  // namespace agentkv

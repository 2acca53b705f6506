// The `agentkv serve` command as a user runs it: no model given, so it starts
// llama-server with the demo model that scripts/setup.sh wrote.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "upstream/llama_process.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

TEST(ServeBinary, ServesTheDemoModelAndExitsCleanlyOnSigterm) {
  const fs::path dir = fs::temp_directory_path() / ("agentkv-serve-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int port = FindFreePort();
  ASSERT_GT(port, 0);

  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const std::string port_arg = std::to_string(port);
  const std::string mem_arg = (dir / "memory").string();
  const std::string log_arg = (dir / "llama.log").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::execl(AGENTKV_BINARY, AGENTKV_BINARY, "serve", "--port", port_arg.c_str(), "--memory-dir",
            mem_arg.c_str(), "--llama-log", log_arg.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* log = ::fdopen(out[0], "r");
  std::string seen;
  int llama_pid = -1;
  char line[4096];
  while (std::fgets(line, sizeof line, log)) {  // blocks until the daemon speaks
    seen += line;
    std::cmatch m;
    if (std::regex_search(line, m, std::regex("llama-server \\(pid (\\d+)\\)"))) {
      llama_pid = std::stoi(m[1]);
    }
    if (std::strstr(line, "agentkv listening on")) break;
  }
  ASSERT_NE(seen.find("agentkv listening on"), std::string::npos) << seen;
  ASSERT_GT(llama_pid, 0) << seen;

  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::seconds(120));
  httplib::Result health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  httplib::Result chat = c.Post(
      "/agents/demo/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"hello"}],"max_tokens":4})", "application/json");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 200);
  EXPECT_TRUE(nlohmann::json::parse(chat->body).contains("choices"));

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // agentkv reaped its llama-server before exiting.
  EXPECT_NE(::kill(llama_pid, 0), 0);
  std::fclose(log);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agentkv

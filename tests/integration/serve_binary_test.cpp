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
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "integration/real_llama.h"
#include "support/launcher.h"
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

  const std::string log_arg = (dir / "llama.log").string();
  testing::LaunchOptions launch;
  launch.pipe_output = true;
  const testing::Launched daemon =
      testing::Launch({AGENTKV_BINARY, "serve", "--port", std::to_string(port), "--memory-dir",
                       (dir / "memory").string(), "--llama-log", log_arg},
                      launch);
  ASSERT_GT(daemon.pid, 0) << daemon.error;
  const pid_t pid = daemon.pid;
  FILE* log = ::fdopen(daemon.output, "r");
  std::string seen;
  int llama_pid = -1, llama_port = -1;
  char line[4096];
  while (std::fgets(line, sizeof line, log)) {  // blocks until the daemon speaks
    seen += line;
    std::cmatch m;
    if (std::regex_search(line, m, std::regex("llama-server \\(pid (\\d+)\\) on port (\\d+)"))) {
      llama_pid = std::stoi(m[1]);
      llama_port = std::stoi(m[2]);
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
  // An SDK's placeholder key is agentkv's business, not llama-server's.
  httplib::Result with_key = c.Post(
      "/agents/demo/v1/chat/completions", {{"Authorization", "Bearer unused"}},
      R"({"messages":[{"role":"user","content":"hello"}],"max_tokens":4})", "application/json");
  ASSERT_TRUE(with_key);
  EXPECT_EQ(with_key->status, 200) << with_key->body;

  // Its llama-server answers agentkv alone: another local process cannot
  // touch the slots without the key, which is in neither its arguments nor
  // any log.
  httplib::Client neighbour("127.0.0.1", llama_port);
  httplib::Result slots = neighbour.Get("/slots");
  ASSERT_TRUE(slots);
  EXPECT_EQ(slots->status, 401);
  httplib::Result erase = neighbour.Post("/slots/0?action=erase", "", "application/json");
  ASSERT_TRUE(erase);
  EXPECT_EQ(erase->status, 401);
  std::ifstream environ_file("/proc/" + std::to_string(llama_pid) + "/environ");
  std::string environ_text((std::istreambuf_iterator<char>(environ_file)), {});
  std::smatch key;  // the environment is NUL-separated: searched whole
  ASSERT_TRUE(std::regex_search(environ_text, key, std::regex("LLAMA_API_KEY=([0-9a-f]+)")));
  ASSERT_EQ(key[1].length(), 64);
  std::ifstream cmdline_file("/proc/" + std::to_string(llama_pid) + "/cmdline");
  const std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)), {});
  EXPECT_EQ(cmdline.find(key[1].str()), std::string::npos);
  EXPECT_EQ(cmdline.find("api-key"), std::string::npos);

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const int status = testing::Reap(pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // agentkv reaped its llama-server before exiting.
  EXPECT_NE(::kill(llama_pid, 0), 0);
  while (std::fgets(line, sizeof line, log)) seen += line;
  std::ifstream llama_log(log_arg);
  seen.append(std::istreambuf_iterator<char>(llama_log), {});
  EXPECT_EQ(seen.find(key[1].str()), std::string::npos) << "the key was logged";
  std::fclose(log);
  fs::remove_all(dir);
}

// A start that only new settings can mend (no model, no llama-server, the
// port taken) ends at once with EX_CONFIG (78), which the systemd unit does
// not restart (RestartPreventExitStatus), and says why.
TEST(ServeBinary, AStartOnlyNewSettingsCanMendExitsWithExConfig) {
  const fs::path dir = fs::temp_directory_path() / ("agentkv-config-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  httplib::Server taken;
  const int port = taken.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  const std::string free_port = std::to_string(FindFreePort());
  const std::string memory = (dir / "memory").string();
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const Case cases[] = {
      {{"--port", free_port, "--model", (dir / "missing.gguf").string()}, "model not found"},
      {{"--port", free_port, "--llama-server", (dir / "no-llama-server").string()},
       "llama-server not found"},
      {{"--port", std::to_string(port)}, "cannot listen on 127.0.0.1:" + std::to_string(port)},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {AGENTKV_BINARY, "serve", "--memory-dir", memory};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const testing::Finished run = testing::RunToEnd(argv);
    EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 78)
        << c.says << ": " << run.status << "\n"
        << run.output;
    EXPECT_NE(run.output.find(c.says), std::string::npos) << run.output;
  }
  fs::remove_all(dir);
}

// A process that took llama-server's port first and answers /health (the
// port is picked by bind, close and reuse) is not taken for llama-server:
// the start fails instead of sending agents' prompts to it.
TEST(ServeBinary, AnotherProcessAnsweringOnLlamaServersPortIsNotTrusted) {
  httplib::Server impostor;
  impostor.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  const int port = impostor.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread serving([&] { impostor.listen_after_bind(); });
  const fs::path dir =
      fs::temp_directory_path() / ("agentkv-impostor-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  LlamaProcessOptions o;
  o.binary = testing::LlamaServerBinary();
  o.model = testing::TestModel();
  o.memory_dir = dir;
  o.port = port;
  o.log_file = dir / "llama.log";
  o.ready_timeout = std::chrono::seconds(60);
  LlamaProcess llama;
  const Status started = llama.Start(o);
  EXPECT_FALSE(started.ok());
  impostor.stop();
  serving.join();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agentkv

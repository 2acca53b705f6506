// A llama-server that cannot run on this CPU (it dies by SIGILL), met
// through `agentkv serve` as a user would: agentkv names the signal and
// says what to do, gives up after its restart budget instead of looping,
// /readyz says why and /healthz stays live. The stand-ins die on purpose:
// the fault must be handled on machines that never produce it.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "integration/agentkv_process.h"
#include "integration/real_llama.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

// Loads (answers /health and /props, erases slots, refuses to save them) and dies by SIGILL
// on its first inference request, as a build whose prefill kernels fault.
constexpr char kDiesOnRequest[] = R"(#!/usr/bin/env python3
import http.server, json, os, signal, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
model = sys.argv[sys.argv.index("--model") + 1]
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.path.startswith("/props"):
            self.answer(200, {"total_slots": 1, "model_path": model, "build_info": "stand-in",
                              "default_generation_settings": {"n_ctx": 4096}})
        else:
            self.answer(200, {"status": "ok"})
    def do_POST(self):
        if "action=erase" in self.path:
            self.answer(200, {"id_slot": 0, "n_erased": 0})
        elif self.path.startswith("/slots"):
            self.answer(501, {"error": {"code": 501, "message": "not supported"}})
        else:
            os.kill(os.getpid(), signal.SIGILL)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
)";

class UnrunnableLlamaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-sigill-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path Script(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0755);
    return path;
  }
  std::vector<std::string> Args(const fs::path& llama) const {
    return {"--memory-dir",   (dir_ / "memory").string(),
            "--model",        testing::TestModel().string(),
            "--llama-server", llama.string(),
            "--max-restarts", "1"};
  }
  fs::path dir_;
};

TEST_F(UnrunnableLlamaTest, ALlamaServerKilledBySigillAtStartStopsAgentkvWithTheReason) {
  const fs::path llama = Script("dies-loading", "#!/bin/sh\nkill -ILL $$\n");
  testing::AgentkvProcess::Options options;
  options.ready_line = "SIGILL";
  testing::AgentkvProcess agentkv(Args(llama), options);
  const int status = agentkv.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  const std::string log = agentkv.log();
  EXPECT_NE(log.find("llama-server was killed by SIGILL (Illegal instruction)"), std::string::npos)
      << log;
  EXPECT_NE(log.find("this CPU cannot run"), std::string::npos) << log;
  EXPECT_NE(log.find("during startup"), std::string::npos) << log;
}

TEST_F(UnrunnableLlamaTest, ALlamaServerKilledBySigillOnEachRequestIsGivenUpWithTheReason) {
  const fs::path llama = Script("dies-on-request", kDiesOnRequest);
  testing::AgentkvProcess agentkv(Args(llama), {});
  httplib::Client c("127.0.0.1", agentkv.port());
  c.set_read_timeout(std::chrono::seconds(120));
  const std::string body = R"({"prompt":"one two three","n_predict":4})";
  // The first request meets the death; the second waits for the restart
  // and meets the next one, which uses up the budget of one restart.
  for (int i = 0; i < 2; ++i) {
    httplib::Result r = c.Post("/completion", body, "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 502) << r->body;
  }
  ASSERT_TRUE(agentkv.WaitForLog("not restarting it again", std::chrono::seconds(60)))
      << agentkv.log();
  EXPECT_NE(agentkv.log().find("llama-server was killed by SIGILL (Illegal instruction)"),
            std::string::npos);
  httplib::Result ready = c.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("gave up after 1 restarts in a row; the last: llama-server was "
                             "killed by SIGILL (Illegal instruction)"),
            std::string::npos)
      << ready->body;
  httplib::Result live = c.Get("/healthz");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
}

}  // namespace
}  // namespace agentkv

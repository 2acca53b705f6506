// `agentkv status` (RunStatus) against a daemon in front of the fake
// llama-server.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "app/status_command.h"
#include "component/fake_daemon_fixture.h"

namespace agentkv {
namespace {

using nlohmann::json;
using StatusCliTest = testing::FakeDaemonTest;

StatusOptions At(int port) {
  StatusOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  return o;
}

TEST_F(StatusCliTest, PrintsTheTablesOfARunningAgentkv) {
  Turn("planner");
  Turn("coder");
  std::ostringstream out, err;
  EXPECT_EQ(RunStatus(At(daemon_->port()), out, err), 0) << err.str();
  const std::string text = out.str();
  EXPECT_TRUE(err.str().empty()) << err.str();
  EXPECT_NE(text.find("llama-server up"), std::string::npos) << text;
  EXPECT_NE(text.find("agents 2 (2 resident"), std::string::npos) << text;
  EXPECT_NE(text.find("SLOT  STATE"), std::string::npos) << text;
  EXPECT_NE(text.find("\nplanner "), std::string::npos) << text;
  EXPECT_NE(text.find("\ncoder "), std::string::npos) << text;
  EXPECT_NE(text.find("1 cold"), std::string::npos) << text;
  EXPECT_NE(text.find("(2 of 2 agents"), std::string::npos) << text;
}

TEST_F(StatusCliTest, PrintsJsonForScripts) {
  Turn("planner");
  StatusOptions o = At(daemon_->port());
  o.json = true;
  o.agents = 0;
  o.recent = 1;
  std::ostringstream out, err;
  ASSERT_EQ(RunStatus(o, out, err), 0) << err.str();
  const json j = json::parse(out.str());
  EXPECT_EQ(j["totals"]["agents"], 1);
  EXPECT_TRUE(j["agents"]["items"].empty()) << "--agents 0 lists none";
  EXPECT_EQ(j["recent"].size(), 1u);
  EXPECT_EQ(j["recent"][0]["agent"], "planner");
}

TEST_F(StatusCliTest, WatchesUntilTheCountWithOneJsonLineEachTime) {
  StatusOptions o = At(daemon_->port());
  o.json = true;
  o.watch = std::chrono::milliseconds(2000);
  o.count = 3;
  std::ostringstream out, err;
  int waits = 0;
  ASSERT_EQ(RunStatus(o, out, err,
                      [&](std::chrono::milliseconds d) {
                        EXPECT_EQ(d.count(), 2000);
                        if (++waits == 1) Turn("between");  // the next frame shows it
                      }),
            0);
  EXPECT_EQ(waits, 2);
  std::istringstream lines(out.str());
  std::vector<json> frames;
  for (std::string line; std::getline(lines, line);) frames.push_back(json::parse(line));
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0]["totals"]["agents"], 0);
  EXPECT_EQ(frames[1]["totals"]["agents"], 1);
}

TEST_F(StatusCliTest, NamesTheAdminKeyWhenAgentkvWantsOne) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"agent-key"};
    o.proxy.auth.admin_key = "admin-key";
  });
  StatusOptions o = At(daemon_->port());
  o.watch = std::chrono::milliseconds(1000);  // a refused key ends a watch too
  std::ostringstream out, err;
  EXPECT_EQ(RunStatus(o, out, err, [](std::chrono::milliseconds) { FAIL() << "no second try"; }),
            1);
  EXPECT_NE(err.str().find("--admin-key-file or AGENTKV_ADMIN_KEY"), std::string::npos)
      << err.str();
  EXPECT_TRUE(out.str().empty());
  o.admin_key = "admin-key";
  o.watch = {};
  std::ostringstream ok, none;
  EXPECT_EQ(RunStatus(o, ok, none), 0) << none.str();
}

TEST_F(StatusCliTest, SaysWhenAgentkvCannotBeReachedOrIsNotAgentkv) {
  std::ostringstream out, err;
  StatusOptions gone = At(fake_->port());  // llama-server, not agentkv
  EXPECT_EQ(RunStatus(gone, out, err), 1);
  EXPECT_NE(err.str().find("an agentkv?"), std::string::npos) << err.str();
  StatusOptions https = gone;
  https.url = "https://127.0.0.1:1";
  std::ostringstream err2;
  EXPECT_EQ(RunStatus(https, out, err2), 1);
  EXPECT_NE(err2.str().find("http://host[:port]"), std::string::npos) << err2.str();
}

}  // namespace
}  // namespace agentkv

// The operations surface against the fake llama-server: health, readiness,
// Prometheus metrics (checked by promtool), API keys.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "component/fake_daemon_fixture.h"
#include "core/prefixes.h"
#include "support/launcher.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Chat;
using OpsTest = testing::FakeDaemonTest;

using testing::Eventually;

// Runs `promtool check metrics` on `text`; returns its exit code and output.
std::pair<int, std::string> Promtool(const std::string& text) {
  const testing::Finished f = testing::RunToEnd({"promtool", "check", "metrics"}, text);
  return {f.status < 0 ? 127 : WEXITSTATUS(f.status), f.output};
}

TEST_F(OpsTest, LivenessAnswersAndReadinessFollowsLlamaServer) {
  httplib::Client c = Client();
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  EXPECT_EQ(c.Get("/readyz")->status, 200);
  EXPECT_EQ(c.Get("/health")->status, 200) << "llama-server's own, passed through";
  fake_->SetHealthy(false);
  ASSERT_TRUE(Eventually([&] { return c.Get("/readyz")->status == 503; }));
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  EXPECT_EQ(c.Get("/health")->status, 503);
  fake_->SetHealthy(true);
  EXPECT_TRUE(Eventually([&] { return c.Get("/readyz")->status == 200; }));
}

TEST_F(OpsTest, MetricsPassPromtoolAndCountWhatHappened) {
  Start(1);
  Turn("a", "a conversation long enough");
  Turn("b");
  daemon_->placer().DrainSaves();
  Turn("a", "a conversation long enough, again");
  Post("/v1/chat/completions", json{{"user", "bad id!"}});
  httplib::Result m = Client().Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto [code, lint] = Promtool(m->body);
  EXPECT_EQ(code, 0) << lint << "\n" << m->body;
  EXPECT_NE(m->body.find("agentkv_restores_total 1\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("agentkv_evictions_total 2\n"), std::string::npos);
  EXPECT_NE(
      m->body.find("agentkv_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1\n"),
      std::string::npos);
  EXPECT_NE(m->body.find("agentkv_ttft_seconds_count{placement=\"restored\"} 1\n"),
            std::string::npos);
  EXPECT_NE(m->body.find("agentkv_ttft_seconds_count{placement=\"cold\"} 2\n"), std::string::npos);
  EXPECT_NE(m->body.find("agentkv_resident_slots 1\n"), std::string::npos);
  EXPECT_NE(m->body.find("agentkv_agents_on_disk 2\n"), std::string::npos);
  EXPECT_EQ(m->body.find("agent=\""), std::string::npos) << "no per-agent labels";
}

// How each turn ended and what the client said of the next are kept per
// agent, and the gaps before agents came back are in /metrics by how the
// turn before had ended.
TEST_F(OpsTest, AnAgentsLastTurnSaysHowItEndedWhatComesNextAndTheGapBeforeItsReturn) {
  fake_->SetFinishReason("tool_calls");
  ASSERT_EQ(Post("/agents/coder/v1/chat/completions", Chat("coder", "run the tests"),
                 {{"X-Agent-Next", "tool"}})
                ->status,
            200);
  httplib::Client c = Client();
  json agent = json::parse(c.Get("/admin/agents/coder")->body);
  EXPECT_EQ(agent["last_turn"]["finish"], "tool_calls") << agent.dump();
  EXPECT_EQ(agent["last_turn"]["next"], "tool");
  EXPECT_TRUE(agent["last_turn"]["gap_ms"].is_null()) << "no return yet";
  EXPECT_EQ(c.Get("/metrics")->body.find("agentkv_return_gap_seconds_count"), std::string::npos);

  // Back from its tool, streamed this time; the model stops.
  fake_->SetFinishReason("stop");
  std::string streamed;
  ASSERT_TRUE(Stream("coder", [&](const char* d, size_t n) {
    streamed.append(d, n);
    return true;
  }));
  ASSERT_NE(streamed.find("\"finish_reason\":\"stop\""), std::string::npos) << streamed;
  agent = json::parse(c.Get("/admin/agents/coder")->body);
  EXPECT_EQ(agent["last_turn"]["finish"], "stop");
  EXPECT_TRUE(agent["last_turn"]["next"].is_null()) << "the second request said nothing";
  EXPECT_GE(agent["last_turn"]["gap_ms"].get<long long>(), 0);
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("agentkv_return_gap_seconds_count{after=\"tool_calls\"} 1\n"),
            std::string::npos)
      << metrics;
  const auto [code, lint] = Promtool(metrics);
  EXPECT_EQ(code, 0) << lint;
  json status = json::parse(c.Get("/admin/status")->body);
  ASSERT_EQ(status["agents"]["items"].size(), 1u);
  EXPECT_EQ(status["agents"]["items"][0]["last_finish"], "stop");

  // A hint agentkv cannot read is refused before anything runs.
  const std::size_t calls = fake_->calls().size();
  httplib::Result bad = Post("/agents/coder/v1/chat/completions", Chat("coder", "again"),
                             {{"X-Agent-Next", "later"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(json::parse(bad->body)["error"]["message"].get<std::string>().find("X-Agent-Next"),
            std::string::npos)
      << bad->body;
  EXPECT_EQ(fake_->calls().size(), calls);
  EXPECT_EQ(fake_->last_header("X-Agent-Next"), "(absent)") << "never passed to llama-server";
}

TEST_F(OpsTest, ApiKeysGuardEveryRouteAndNeverReachLlamaServerOrTheLog) {
  // spdlog's sink list may only change while no daemon thread logs.
  daemon_.reset();
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"old-key-123", "new-key-456"};
    o.proxy.auth.admin_key = "admin-key-789";
  });
  auto post = [&](const std::string& key) {
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    return Post("/agents/a/v1/chat/completions", Chat("a", "hi"), h);
  };
  httplib::Result none = post("");
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(json::parse(none->body)["error"]["code"], 401);
  EXPECT_EQ(post("wrong")->status, 401);
  EXPECT_EQ(post("old-key-123")->status, 200) << "either key works during a rotation";
  EXPECT_EQ(post("new-key-456")->status, 200);
  EXPECT_EQ(fake_->last_authorization(), "") << "agentkv's key is not llama-server's";

  httplib::Client c = Client();
  EXPECT_EQ(c.Get("/admin/agents")->status, 401);
  c.set_bearer_token_auth("new-key-456");
  EXPECT_EQ(c.Get("/admin/agents")->status, 401) << "an API key is not the admin key";
  EXPECT_EQ(c.Get("/v1/models")->status, 200);
  c.set_bearer_token_auth("admin-key-789");
  EXPECT_EQ(c.Get("/admin/agents")->status, 200);
  httplib::Client anonymous = Client();
  EXPECT_EQ(anonymous.Get("/healthz")->status, 200) << "health is public by default";
  EXPECT_EQ(anonymous.Get("/metrics")->status, 200) << "metrics are public by default";
  EXPECT_EQ(anonymous.Get("/v1/models")->status, 401);

  daemon_.reset();
  spdlog::default_logger()->sinks().pop_back();
  for (const char* key : {"old-key-123", "new-key-456", "admin-key-789"}) {
    EXPECT_EQ(log.str().find(key), std::string::npos) << key << " was logged";
  }
  EXPECT_NE(log.str().find("agent=a"), std::string::npos) << "the log did capture requests";
}

TEST_F(OpsTest, ReadinessTurns503OnTheFirstForwardThatCannotReachLlamaServer) {
  Start(2, [](DaemonOptions& o) { o.health_interval = std::chrono::hours(1); });
  EXPECT_EQ(Client().Get("/readyz")->status, 200);
  fake_.reset();  // llama-server gone; the next health check is an hour away
  httplib::Result models = Client().Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 502) << models->body;
  EXPECT_EQ(models->body.find("127.0.0.1"), std::string::npos) << "no internal address";
  EXPECT_EQ(Client().Get("/readyz")->status, 503);
}

// A key replaced by another keeps its agents when the key file names the
// old key's scope as the new key's tenant; keys of one tenant share agents.
TEST_F(OpsTest, ARotatedKeyKeepsItsAgentsThroughItsTenant) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"old-key"};
    o.proxy.auth.admin_key = "admin-key";
  });
  auto turn = [&](const std::string& key, const char* text) {
    httplib::Result r = Post("/agents/planner/v1/chat/completions", Chat("planner", text),
                             {{"Authorization", "Bearer " + key}});
    return std::to_string(r->status) + " " + r->get_header_value("X-Agentkv-Placement");
  };
  EXPECT_EQ(turn("old-key", "hi"), "200 cold");
  daemon_->placer().DrainSaves();
  Restart([](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"new-key", "laptop-key"};
    o.proxy.auth.tenants = {"@" + Prefixes::ScopeOf("old-key"), "@" + Prefixes::ScopeOf("old-key")};
    o.proxy.auth.admin_key = "admin-key";
  });
  EXPECT_EQ(turn("old-key", "hi"), "401 ");
  EXPECT_EQ(turn("new-key", "hi again"), "200 restored") << "the old key's memory";
  EXPECT_EQ(turn("laptop-key", "and again"), "200 resident") << "one tenant, one agent";
}

// Two tenants both call their agent "planner": by default each key has its
// own agents, so neither runs on the other's KV or learns it exists. In a
// shared namespace "planner" is the first key's: the other is refused.
TEST_F(OpsTest, EachApiKeyHasItsOwnAgentsUnlessTheNamespaceIsShared) {
  for (const bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "shared" : "per-key");
    Start(2, [shared](DaemonOptions& o) {
      o.proxy.auth.api_keys = {"key-of-alice", "key-of-bob"};
      o.proxy.auth.admin_key = "admin-key";
      o.proxy.agents_per_key = !shared;
    });
    auto turn = [&](const std::string& key, const char* text) {
      httplib::Result r = Post("/agents/planner/v1/chat/completions", Chat("planner", text),
                               {{"Authorization", "Bearer " + key}});
      return std::to_string(r->status) + " " + r->get_header_value("X-Agentkv-Placement");
    };
    EXPECT_EQ(turn("key-of-alice", "hi"), "200 cold");
    EXPECT_EQ(turn("key-of-bob", "hi"), shared ? "403 " : "200 cold")
        << "no reuse count to read, no memory to overwrite";
    EXPECT_EQ(turn("key-of-alice", "again"), "200 resident");
    daemon_->placer().DrainSaves();
    EXPECT_EQ(turn("key-of-bob", "hi"), shared ? "403 " : "200 resident")
        << "once saved, its memory says whose it is";
    // Bob's sub-agent starts from his own planner; in a shared namespace
    // "planner" is Alice's, whose first request claimed it.
    httplib::Result spawn =
        Post("/agents/helper/v1/chat/completions", Chat("helper", "hi"),
             {{"Authorization", "Bearer key-of-bob"}, {"X-Agentkv-Parent", "planner"}});
    EXPECT_EQ(spawn->status, shared ? 403 : 200) << spawn->body;

    httplib::Client admin = Client();
    admin.set_bearer_token_auth("admin-key");
    const json agents = json::parse(admin.Get("/admin/agents")->body)["agents"];
    std::vector<std::string> ids;
    for (const json& a : agents) ids.push_back(a["id"].get<std::string>());
    ASSERT_EQ(ids.size(), shared ? 1u : 3u) << agents.dump();
    if (!shared) {
      // The admin names an agent with its key's namespace, as listed.
      for (const std::string& id : ids) EXPECT_NE(id.find('@'), std::string::npos) << id;
      EXPECT_EQ(admin.Get("/admin/agents/" + ids[0])->status, 200);
      EXPECT_EQ(admin.Get("/admin/agents/planner")->status, 404);
    }
    daemon_.reset();
  }
}

TEST_F(OpsTest, WithAPIKeysButNoAdminKeyTheAdminApiIsOff) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"k"};
    o.proxy.auth.metrics_need_key = true;
    o.proxy.auth.health_needs_key = true;
  });
  httplib::Client c = Client();
  EXPECT_EQ(c.Get("/healthz")->status, 401);
  EXPECT_EQ(c.Get("/metrics")->status, 401);
  c.set_bearer_token_auth("k");
  EXPECT_EQ(c.Get("/admin/agents")->status, 403);
  EXPECT_EQ(c.Get("/metrics")->status, 200);
  EXPECT_EQ(c.Get("/readyz")->status, 200);
}

}  // namespace
}  // namespace agentkv

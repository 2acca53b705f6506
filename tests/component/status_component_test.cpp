// GET /admin/status, what the status page and `agentkv status` show,
// against the fake llama-server.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "component/fake_daemon_fixture.h"

namespace agentkv {
namespace {

using nlohmann::json;
using StatusTest = testing::FakeDaemonTest;

AgentId Id(const std::string& s) { return AgentId::Parse(s).value(); }

TEST_F(StatusTest, ShowsSlotsAgentsTotalsTtftAndRecentRequests) {
  EXPECT_EQ(Turn("a"), "cold");
  EXPECT_EQ(Turn("b"), "cold");
  daemon_->placer().DrainSaves();
  EXPECT_EQ(Turn("c"), "cold");  // evicts a
  daemon_->placer().DrainSaves();
  EXPECT_EQ(Turn("a"), "restored");
  httplib::Result r = Client().Get("/admin/status");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json s = json::parse(r->body);

  EXPECT_TRUE(s["upstream_up"].get<bool>());
  EXPECT_GT(s["now"].get<long long>(), 1'600'000'000'000LL);
  const json& t = s["totals"];
  EXPECT_EQ(t["agents"], 3);
  EXPECT_EQ(t["resident"], 2);
  EXPECT_EQ(t["slots"], 2);
  EXPECT_EQ(t["restores"], 1);
  EXPECT_GE(t["saves"].get<int>(), 3);
  EXPECT_EQ(t["disk_budget_bytes"], 0);
  EXPECT_GT(t["bytes_on_disk"].get<long long>(), 0);

  ASSERT_EQ(s["slots"].size(), 2u);
  for (const json& slot : s["slots"]) {
    EXPECT_EQ(slot["state"], "idle") << slot;
    EXPECT_TRUE(slot["agent"] == "a" || slot["agent"] == "c") << slot;
    EXPECT_GE(slot["for_ms"].get<long long>(), 0);
    EXPECT_LE(slot["since"].get<long long>(), s["now"].get<long long>());
  }

  const json& agents = s["agents"];
  EXPECT_EQ(agents["total"], 3);
  EXPECT_EQ(agents["sort"], "last_used");
  ASSERT_EQ(agents["items"].size(), 3u);
  const json& a = agents["items"][0];
  EXPECT_EQ(a["id"], "a") << "most recently used first";
  EXPECT_TRUE(a["resident"].get<bool>());
  EXPECT_EQ(a["requests"], 2);
  EXPECT_EQ(a["placements"], json({{"cold", 1}, {"restored", 1}}));
  EXPECT_TRUE(a["reuse"].is_number());
  const json& b = agents["items"][2];
  EXPECT_EQ(b["id"], "b");
  EXPECT_FALSE(b["resident"].get<bool>());
  EXPECT_GT(b["saved_bytes"].get<long long>(), 0);

  ASSERT_EQ(s["recent"].size(), 4u);
  const json& last = s["recent"][0];
  EXPECT_EQ(last["agent"], "a");
  EXPECT_EQ(last["placement"], "restored");
  EXPECT_EQ(last["status"], 200);
  EXPECT_TRUE(last["cache_n"].is_number());
  EXPECT_TRUE(last["prompt_n"].is_number());
  EXPECT_GE(last["ms"].get<long long>(), last["ttft_ms"].get<long long>());

  EXPECT_EQ(s["ttft"]["bucket_ms"], 10000);
  long long cold = 0, restored = 0;
  for (const json& bucket : s["ttft"]["buckets"]) {
    if (bucket.contains("cold")) cold += bucket["cold"]["count"].get<long long>();
    if (bucket.contains("restored")) restored += bucket["restored"]["count"].get<long long>();
  }
  EXPECT_EQ(cold, 3);
  EXPECT_EQ(restored, 1);
}

TEST_F(StatusTest, PagesSortsAndFiltersAThousandAgents) {
  Turn("parent");
  daemon_->placer().DrainSaves();
  for (int i = 0; i < 1000; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "agent-%04d", i);
    ASSERT_TRUE(daemon_->memory().Fork(Id("parent"), Id(id)).ok()) << id;
  }
  httplib::Result r = Client().Get("/admin/status?sort=id&offset=950&limit=60&recent=0");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json s = json::parse(r->body);
  EXPECT_EQ(s["totals"]["agents"], 1001);
  EXPECT_EQ(s["agents"]["total"], 1001);
  ASSERT_EQ(s["agents"]["items"].size(), 51u) << "the last page";
  EXPECT_EQ(s["agents"]["items"][0]["id"], "agent-0950");
  EXPECT_EQ(s["agents"]["items"][50]["id"], "parent");
  EXPECT_TRUE(s["recent"].empty());
  EXPECT_LT(r->body.size(), 40000u) << "a page, not the whole list";

  const json f = json::parse(Client().Get("/admin/status?filter=agent-09&limit=5")->body);
  EXPECT_EQ(f["agents"]["total"], 100);
  EXPECT_EQ(f["agents"]["items"].size(), 5u);
  EXPECT_EQ(f["agents"]["filter"], "agent-09");
  EXPECT_EQ(json::parse(Client().Get("/admin/status?filter=agent%2D09")->body)["agents"]["total"],
            100)
      << "an escaped filter is decoded";
}

TEST_F(StatusTest, RefusesABadQueryWithA400NamingTheParameter) {
  for (const char* q : {"limit=0", "limit=501", "offset=-1", "sort=size", "filter=%3Cb%3E",
                        "filter=<b>", "filter=%4", "colour=red", "recent=x"}) {
    httplib::Result r = Client().Get(std::string("/admin/status?") + q);
    ASSERT_TRUE(r) << q;
    EXPECT_EQ(r->status, 400) << q << ": " << r->body;
  }
}

TEST_F(StatusTest, ADeletedAgentLeavesTheListAndItsCounts) {
  Turn("a");
  Turn("b");
  daemon_->placer().DrainSaves();
  ASSERT_EQ(Client().Delete("/admin/agents/a")->status, 200);
  const json s = json::parse(Client().Get("/admin/status")->body);
  ASSERT_EQ(s["agents"]["items"].size(), 1u);
  EXPECT_EQ(s["agents"]["items"][0]["id"], "b");
  EXPECT_EQ(daemon_->activity().Agents().count(Id("a")), 0u);
}

TEST_F(StatusTest, NeedsTheAdminKeyWhenKeysAreSet) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"agent-key"};
    o.proxy.auth.admin_key = "admin-key";
  });
  auto get = [&](const char* key) {
    httplib::Client c = Client();
    if (key) c.set_bearer_token_auth(key);
    return c.Get("/admin/status");
  };
  EXPECT_EQ(get(nullptr)->status, 401);
  EXPECT_EQ(get("agent-key")->status, 401);
  EXPECT_EQ(get("admin-key")->status, 200);
}

}  // namespace
}  // namespace agentkv

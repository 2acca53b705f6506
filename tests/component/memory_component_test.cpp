// Durable memory against the fake llama-server: write policies, untrusted
// restores, restarts, the lifecycle API and graceful shutdown.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <thread>

#include "component/fake_daemon_fixture.h"
#include "store/sha256.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Chat;
namespace fs = std::filesystem;
using MemoryTest = testing::FakeDaemonTest;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

using testing::Eventually;

std::vector<std::string> FilesOf(const fs::path& dir, const AgentId& agent) {
  std::vector<std::string> out;
  const std::string hash = Sha256Hex(agent.str());
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().rfind(hash, 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

// A client that invents agent ids for requests that never run leaves
// nothing behind: each request's claim of its scope ends with it.
TEST_F(MemoryTest, RefusedRequestsOfInventedAgentsLeaveNoClaimBehind) {
  httplib::Client c = Client();
  for (int i = 0; i < 300; ++i) {
    const std::string agent = "invented-" + std::to_string(i);
    httplib::Result res =
        c.Post("/agents/" + agent + "/v1/chat/completions", {{"X-Agentkv-Parent", "nobody"}},
               Chat(agent, "x").dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 404) << res->body;
  }
  EXPECT_EQ(daemon_->store().ClaimCount(), 0u);
  Turn("a");  // resident, saved at its turn's end: its memory holds its scope
  daemon_->placer().DrainSaves();
  EXPECT_EQ(daemon_->store().ClaimCount(), 0u);
}

TEST_F(MemoryTest, NewAgentsPastTheKeysRateAre429WhileKnownAgentsAreServed) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.max_new_agents_per_minute = 3;
    o.proxy.auth.api_keys = {"key-a", "key-b"};
  });
  auto turn = [&](const std::string& agent, const char* key) {
    return Post("/agents/" + agent + "/v1/chat/completions", Chat(agent, "x"),
                {{"Authorization", std::string("Bearer ") + key}});
  };
  for (const char* agent : {"n1", "n2", "n3"}) EXPECT_EQ(turn(agent, "key-a")->status, 200);
  httplib::Result refused = turn("n4", "key-a");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429) << refused->body;
  EXPECT_EQ(json::parse(refused->body)["error"]["type"], "rate_limit_error");
  EXPECT_GE(std::stoi(refused->get_header_value("Retry-After")), 1);
  EXPECT_EQ(turn("n1", "key-a")->status, 200) << "an agent it knows";
  EXPECT_EQ(turn("m1", "key-b")->status, 200) << "another key has its own rate";
  EXPECT_NE(Client().Get("/metrics")->body.find("agentkv_new_agents_refused_total 1"),
            std::string::npos);
}

TEST_F(MemoryTest, TurnEndSavesLetAnEvictionOnlyRestore) {
  Start(1);
  EXPECT_EQ(Turn("a"), "cold");
  daemon_->placer().DrainSaves();
  EXPECT_TRUE(daemon_->store().HasMemory(Id("a"))) << "saved after its turn";
  auto saves_of_a = [&] {
    int n = 0;
    for (const auto& call : fake_->calls()) n += call.route == "save" && call.agent == "a";
    return n;
  };
  ASSERT_EQ(saves_of_a(), 1);
  EXPECT_EQ(Turn("b"), "cold");  // evicts a, which is clean
  EXPECT_EQ(saves_of_a(), 1) << "no save on the request path";
  daemon_->placer().DrainSaves();
  EXPECT_EQ(Turn("a", "hello again"), "restored");
  EXPECT_TRUE(fake_->violations().empty());
}

TEST_F(MemoryTest, TheEvictionPolicySavesOnlyWhenTheSlotIsNeeded) {
  Start(1, [](DaemonOptions& o) { o.save_policy = SavePolicy::kEviction; });
  Turn("a");
  daemon_->placer().DrainSaves();
  EXPECT_EQ(CountCalls("save"), 0);
  EXPECT_FALSE(daemon_->store().HasMemory(Id("a")));
  Turn("b");
  EXPECT_EQ(CountCalls("save"), 1);
  EXPECT_TRUE(daemon_->store().HasMemory(Id("a")));
}

TEST_F(MemoryTest, AgentsSavedBeforeARestartAreRestoredAfterIt) {
  Turn("a");
  daemon_->placer().DrainSaves();
  Restart();
  fake_->LoseAllKv();  // a new llama-server too
  EXPECT_EQ(Turn("a", "hello again"), "restored");
  EXPECT_TRUE(fake_->violations().empty());
}

TEST_F(MemoryTest, ARestoreThatReusesNothingIsCountedAndItsFileQuarantined) {
  Start(1);
  Turn("a", "a long enough conversation to judge the restore by");
  Turn("b");
  daemon_->placer().DrainSaves();
  fake_->HollowNextRestore();
  json next = Chat("a", "a long enough conversation to judge the restore by");
  next["messages"].push_back({{"role", "user"}, {"content", "and one more question"}});
  httplib::Result r = Post("/agents/a/v1/chat/completions", next);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << "the answer is still right: it was prefilled";
  EXPECT_EQ(json::parse(r->body)["timings"]["cache_n"], 0);
  EXPECT_EQ(daemon_->placer().stats().fallbacks, 1);
  EXPECT_EQ(daemon_->store().quarantined(), 1);
  EXPECT_FALSE(fs::is_empty(dir_ / "quarantine"));
  const json stats = json::parse(Client().Get("/admin/stats")->body);
  EXPECT_EQ(stats["quarantine_files"], 3) << "metadata, state and reason";
  EXPECT_GT(stats["quarantine_bytes"].get<long long>(), 0);
  EXPECT_NE(Client().Get("/metrics")->body.find("agentkv_quarantine_files 3"), std::string::npos);
}

TEST_F(MemoryTest, ARestoreThatReusesNothingOfAnotherPromptIsNotQuarantined) {
  Start(1);
  Turn("a", "a long enough conversation to judge the restore by");
  Turn("b");
  daemon_->placer().DrainSaves();
  // The agent starts over with another first message: nothing to reuse.
  httplib::Result r =
      Post("/agents/a/v1/chat/completions",
           {{"messages", {{{"role", "user"}, {"content", "something else entirely, as long"}}}}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("X-Agentkv-Placement"), "restored");
  EXPECT_EQ(json::parse(r->body)["timings"]["cache_n"], 0);
  EXPECT_EQ(daemon_->store().quarantined(), 0);
  EXPECT_EQ(daemon_->placer().stats().fallbacks, 0);
}

TEST_F(MemoryTest, ARestoreLlamaServerRefusesOnceKeepsTheFileForTheNextTurn) {
  Start(1);
  Turn("a", "first turn of a");
  Turn("b");
  daemon_->placer().DrainSaves();
  fake_->FailNextRestore();  // e.g. no room in its KV cache just now
  EXPECT_EQ(Turn("a", "first turn of a, again"), "cold");
  EXPECT_EQ(daemon_->store().quarantined(), 0);
  Turn("b");
  daemon_->placer().DrainSaves();
  EXPECT_EQ(Turn("a", "first turn of a, again and again"), "restored");
}

TEST_F(MemoryTest, AForkOfADamagedParentIsRefusedAndGivesTheChildNothing) {
  Turn("p", "the parent's conversation");
  daemon_->placer().DrainSaves();
  for (const std::string& f : FilesOf(dir_, Id("p"))) {
    if (fs::path(f).extension() == ".kv") std::ofstream(f, std::ios::app) << "!";
  }
  httplib::Result fork =
      Client().Post("/admin/agents/p/fork", R"({"into":"child"})", "application/json");
  ASSERT_TRUE(fork);
  EXPECT_EQ(fork->status, 404) << fork->body;
  EXPECT_FALSE(daemon_->store().HasMemory(Id("child")));
  EXPECT_EQ(daemon_->store().quarantined(), 1) << "the damaged parent file";
  daemon_->placer().DrainSaves();
  EXPECT_TRUE(daemon_->store().HasMemory(Id("p"))) << "saved again from its slot";
}

// The sequence from the report: an ordinary request llama-server refuses
// (400, no timings) for a new agent used to reset every slot, unsaved.
TEST_F(MemoryTest, ARequestLlamaServerRefusesCostsNoAgentItsMemory) {
  for (SavePolicy policy : {SavePolicy::kTurnEnd, SavePolicy::kEviction}) {
    SCOPED_TRACE(policy == SavePolicy::kTurnEnd ? "turn-end" : "eviction");
    Start(2, [policy](DaemonOptions& o) {
      o.save_policy = policy;
      o.health_interval = std::chrono::hours(1);
    });
    EXPECT_EQ(Turn("v", "first turn of v"), "cold");
    httplib::Result bad = Post("/agents/new/completion", {{"prompt", "x"}, {"n_predict", "bad"}});
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);
    daemon_->placer().DrainSaves();
    EXPECT_EQ(Turn("v", "first turn of v, second"), "resident");
    EXPECT_EQ(Turn("w"), "cold");  // evicts new, the least recently used
    daemon_->placer().DrainSaves();
    EXPECT_EQ(daemon_->placer().stats().resets, 0);
    EXPECT_EQ(daemon_->placer().stats().save_failures, 0);
    EXPECT_EQ(Turn("v", "first turn of v, third"), "resident");
    daemon_->Stop();
    EXPECT_GT(daemon_->store().Find(Id("v"))->tokens.value_or(0), 0)
        << "saved, at the latest on stop";
    EXPECT_TRUE(fake_->violations().empty());
  }
}

TEST_F(MemoryTest, ATurnWithAnImageIsServedStatelessAndLeavesTheAgentsMemoryAlone) {
  EXPECT_EQ(Turn("v", "a text turn"), "cold");
  daemon_->placer().DrainSaves();
  const TokenCount saved = daemon_->store().Find(Id("v"))->tokens;
  const json image = {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,AA"}}}};
  const json parts = {{{"type", "text"}, {"text", "agent:v|what is this?"}}, image};
  httplib::Result r = Post("/agents/v/v1/chat/completions",
                           {{"messages", {{{"role", "user"}, {"content", parts}}}}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("X-Agentkv-Placement"), "stateless");
  daemon_->placer().DrainSaves();
  EXPECT_EQ(daemon_->store().Find(Id("v"))->tokens, saved) << "nothing of the image was saved";
  EXPECT_EQ(Turn("v", "a text turn, again"), "resident");
  EXPECT_TRUE(fake_->violations().empty());
}

TEST_F(MemoryTest, ALlamaServerThatCannotSaveSlotsIsServedStatelessWithOneWarning) {
  fake_->FailNextSave();  // the probe at start
  Restart();
  EXPECT_EQ(Turn("a"), "stateless");
  EXPECT_EQ(Turn("a", "hello again"), "stateless");
  daemon_->placer().DrainSaves();
  const json stats = json::parse(Client().Get("/admin/stats")->body);
  EXPECT_EQ(stats["persistence"], false);
  EXPECT_NE(stats["stateless_because"].get<std::string>().find("cannot save"), std::string::npos);
  EXPECT_EQ(stats["save_failures"], 0) << "no save tried and failed turn after turn";
  EXPECT_EQ(CountCalls("save"), 0) << "the probe at start only";
}

TEST_F(MemoryTest, WarmingAResidentAgentKeepsItsKvCleanAndOnlyKnownAgentsArePinned) {
  Turn("a", "a turn that leaves some tokens");
  daemon_->placer().DrainSaves();
  const SlotId slot = *daemon_->pool().SlotOf(Id("a"));
  const SlotView before = daemon_->pool().View(slot);
  ASSERT_FALSE(before.dirty);
  httplib::Client c = Client();
  httplib::Result warm = c.Post("/admin/agents/a/warm", "", "application/json");
  ASSERT_EQ(warm->status, 200) << warm->body;
  EXPECT_EQ(json::parse(warm->body)["placement"], "resident");
  EXPECT_EQ(daemon_->pool().View(slot).tokens, before.tokens);
  EXPECT_FALSE(daemon_->pool().View(slot).dirty);
  EXPECT_EQ(c.Post("/admin/agents/nobody/pin", "", "application/json")->status, 404);
  EXPECT_FALSE(daemon_->pool().Pinned(Id("nobody")));
}

TEST_F(MemoryTest, AStopEndsWithinItsDeadlineWhenLlamaServerStopsAnswering) {
  Start(2, [](DaemonOptions& o) {
    o.save_policy = SavePolicy::kEviction;
    o.stop_timeout = std::chrono::seconds(2);
  });
  Turn("a");
  fake_->HangSaves(true);  // as a llama-server that got the signal too
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(daemon_->Stop(), 1) << "a could not be saved";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  fake_->HangSaves(false);
}

TEST_F(MemoryTest, ALlamaServerRestartIsNoticedAndAgentsComeBackFromDisk) {
  Turn("a");
  daemon_->placer().DrainSaves();
  fake_->SetHealthy(false);
  const int checks = fake_->health_checks();
  ASSERT_TRUE(Eventually([&] { return fake_->health_checks() > checks + 1; }))
      << "the watch saw llama-server down";
  fake_->LoseAllKv();
  fake_->SetHealthy(true);
  ASSERT_TRUE(Eventually([&] { return daemon_->placer().stats().resets > 0; }));
  EXPECT_EQ(Turn("a", "hello again"), "restored") << "not trusted as resident any more";
  EXPECT_TRUE(fake_->violations().empty());
}

TEST_F(MemoryTest, ASaveOfAnEmptiedSlotKeepsTheOlderFile) {
  Start(1, [](DaemonOptions& o) {
    o.save_policy = SavePolicy::kEviction;
    o.health_interval = std::chrono::hours(1);
  });
  Turn("a", "first turn of a");
  Turn("b");                             // saves a
  Turn("a", "first turn of a, second");  // restores a
  const TokenCount tokens = daemon_->store().Find(Id("a"))->tokens;
  fake_->LoseAllKv();  // a restart the health watch did not see
  Turn("b");           // evicting a finds its slot empty
  EXPECT_EQ(daemon_->store().Find(Id("a"))->tokens, tokens) << "the older memory stays";
  EXPECT_EQ(daemon_->placer().stats().resets, 1);
}

TEST_F(MemoryTest, AnEmptySlotNeverReplacesAMemoryEvenWhenItsSizeIsUnknown) {
  Start(1, [](DaemonOptions& o) {
    o.save_policy = SavePolicy::kEviction;
    o.health_interval = std::chrono::hours(1);
  });
  Turn("a", "first turn of a");
  Turn("b");  // saves a
  const TokenCount tokens = daemon_->store().Find(Id("a"))->tokens;
  ASSERT_GT(tokens.value_or(0), 0);
  // A client of a that hangs up mid-stream: no timings, an unknown count.
  fake_->SetStreamChunks(1000000);
  fake_->HoldStreamsAt(2);
  Stream("a", [](const char*, size_t) { return false; });
  ASSERT_TRUE(fake_->WaitHeld(std::chrono::seconds(20)));
  fake_->Resume();
  ASSERT_TRUE(fake_->WaitCancelled(std::chrono::seconds(20)));
  fake_->SetStreamChunks(3);
  ASSERT_TRUE(Eventually([&] {
    const std::optional<SlotId> slot = daemon_->pool().SlotOf(Id("a"));
    return slot && daemon_->pool().View(*slot).phase == SlotPhase::kIdle;
  }));
  EXPECT_FALSE(daemon_->pool().View(*daemon_->pool().SlotOf(Id("a"))).tokens.has_value());
  fake_->LoseAllKv();
  Turn("b");  // evicts a, whose slot is now empty
  ASSERT_TRUE(daemon_->store().HasMemory(Id("a")));
  EXPECT_EQ(daemon_->store().Find(Id("a"))->tokens, tokens);
  EXPECT_EQ(daemon_->placer().stats().save_failures, 1);
  EXPECT_EQ(daemon_->placer().stats().resets, 0) << "an unknown count is no evidence";
}

TEST_F(MemoryTest, TheLifecycleApiListsShowsWarmsForksPinsAndDeletes) {
  Turn("a");
  Turn("b");
  daemon_->placer().DrainSaves();
  httplib::Client c = Client();
  json list = json::parse(c.Get("/admin/agents")->body);
  ASSERT_EQ(list["agents"].size(), 2u);
  EXPECT_EQ(list["agents"][0]["id"], "a");
  EXPECT_EQ(list["agents"][0]["resident"], true);
  EXPECT_GT(list["agents"][0]["saved"]["bytes"].get<long long>(), 0);
  EXPECT_EQ(list["total"], 2);
  // Paged as /admin/status is: by id, a page of `limit` from `offset`.
  json page = json::parse(c.Get("/admin/agents?offset=1&limit=1")->body);
  ASSERT_EQ(page["agents"].size(), 1u);
  EXPECT_EQ(page["agents"][0]["id"], "b");
  EXPECT_EQ(page["total"], 2);
  EXPECT_EQ(json::parse(c.Get("/admin/agents?filter=b")->body)["total"], 1);
  EXPECT_EQ(c.Get("/admin/agents?limit=100000")->status, 400);

  EXPECT_EQ(c.Get("/admin/agents/nobody")->status, 404);
  EXPECT_EQ(c.Post("/admin/agents/nobody/warm", "", "application/json")->status, 404);
  EXPECT_EQ(c.Get("/admin/agents/bad%20id")->status, 400);

  httplib::Result fork = c.Post("/admin/agents/a/fork", R"({"into":"a-sub"})", "application/json");
  ASSERT_EQ(fork->status, 200) << fork->body;
  EXPECT_TRUE(daemon_->store().HasMemory(Id("a-sub")));
  httplib::Result warm = c.Post("/admin/agents/a-sub/warm", "", "application/json");
  ASSERT_EQ(warm->status, 200) << warm->body;
  EXPECT_EQ(json::parse(warm->body)["placement"], "restored");
  // The fork continues a's conversation (the fake tags KV by its text).
  auto sub_turn = [&](const std::string& text) {
    httplib::Result r = Post("/agents/a-sub/v1/chat/completions", Chat("a", text));
    return r ? r->get_header_value("X-Agentkv-Placement") : "";
  };
  EXPECT_EQ(sub_turn("hello, sub-agent"), "resident") << "warmed ahead of its request";

  ASSERT_EQ(c.Post("/admin/agents/a-sub/pin", "", "application/json")->status, 200);
  EXPECT_EQ(c.Post("/admin/agents/b/pin", "", "application/json")->status, 409)
      << "one pin at most with 2 slots by default";
  Turn("x");
  Turn("y");
  EXPECT_EQ(json::parse(c.Get("/admin/agents/a-sub")->body)["resident"], true)
      << "a pinned agent is not evicted";
  ASSERT_EQ(c.Delete("/admin/agents/a-sub/pin")->status, 200);

  const int erases = CountCalls("erase");
  httplib::Result del = c.Delete("/admin/agents/a-sub");
  ASSERT_EQ(del->status, 200) << del->body;
  EXPECT_EQ(CountCalls("erase"), erases + 1) << "its slot was erased";
  EXPECT_TRUE(FilesOf(dir_, Id("a-sub")).empty()) << "nothing of it is left on disk";
  EXPECT_EQ(c.Delete("/admin/agents/a-sub")->status, 404);
  EXPECT_EQ(Turn("a-sub", "hello"), "cold");
  EXPECT_TRUE(fake_->violations().empty()) << fake_->violations().front();
}

TEST_F(MemoryTest, StoppingSavesDirtyResidentAgents) {
  Start(2, [](DaemonOptions& o) { o.save_policy = SavePolicy::kEviction; });
  Turn("a");
  EXPECT_FALSE(daemon_->store().HasMemory(Id("a")));
  daemon_->Stop();
  Restart();
  EXPECT_TRUE(daemon_->store().HasMemory(Id("a"))) << "saved at shutdown";
}

TEST_F(MemoryTest, StoppingLetsAStreamInFlightFinish) {
  fake_->HoldStreamsAt(2);
  auto stream = std::async(std::launch::async, [&] {
    return Post("/agents/s/v1/chat/completions", Chat("s", "x", true));
  });
  ASSERT_TRUE(fake_->WaitHeld(std::chrono::seconds(20)));
  auto stopping = std::async(std::launch::async, [&] { daemon_->Stop(); });
  fake_->Resume();
  stopping.get();
  httplib::Result r = stream.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("data: [DONE]"), std::string::npos) << "the whole stream arrived";
}

TEST_F(MemoryTest, TheDiskBudgetHoldsUnderAWorkloadThatExceedsIt) {
  Start(1, [](DaemonOptions& o) { o.store.budget_bytes = 200; });
  for (int i = 0; i < 12; ++i) {
    Turn("agent-" + std::to_string(i), std::string(40, 'x'));
    daemon_->placer().DrainSaves();
    EXPECT_LE(daemon_->store().TotalBytes(), 200u);
  }
  EXPECT_GE(daemon_->store().List().size(), 2u);
  EXPECT_LT(daemon_->store().List().size(), 12u);
  EXPECT_EQ(Turn("agent-11", std::string(40, 'x') + "more"), "resident");
}

}  // namespace
}  // namespace agentkv

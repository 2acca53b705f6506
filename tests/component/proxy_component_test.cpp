// agentkv's http front and placement against an in-process fake llama-server.
#include <gtest/gtest.h>
#include <httplib.h>

#include <future>
#include <nlohmann/json.hpp>

#include "component/fake_daemon_fixture.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Chat;
using testing::FakeLlamaServer;
namespace fs = std::filesystem;

using ProxyTest = testing::FakeDaemonTest;

TEST_F(ProxyTest, ForwardsACompletionPinnedToTheAgentsSlotAndReturnsItUnchanged) {
  httplib::Result res = Post("/agents/alice/v1/chat/completions", Chat("alice", "hi"));
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  json body = json::parse(res->body);
  EXPECT_EQ(body["id"], "fake-alice");
  EXPECT_EQ(res->get_header_value("X-Agentkv-Placement"), "cold");
  json sent = json::parse(fake_->last_body());
  EXPECT_EQ(sent["id_slot"], std::stoi(res->get_header_value("X-Agentkv-Slot")));
  EXPECT_EQ(sent["cache_prompt"], true);
}

TEST_F(ProxyTest, AReturningAgentIsRestoredIntoAnotherSlotWithItsOwnKV) {
  ASSERT_EQ(Post("/v1/chat/completions", Chat("a", "1"), {{"X-Agent-Id", "a"}})->status, 200);
  json b = Chat("b", "1");
  b["user"] = "b";
  ASSERT_EQ(Post("/v1/chat/completions", b)->status, 200);
  json c = Chat("c", "1");
  c["prompt_cache_key"] = "c";
  ASSERT_EQ(Post("/v1/chat/completions", c)->status, 200);  // evicts a
  httplib::Result back = Post("/agents/a/v1/chat/completions", Chat("a", "12"));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->get_header_value("X-Agentkv-Placement"), "restored");
  json body = json::parse(back->body);
  EXPECT_GT(body["timings"]["cache_n"].get<int>(), 0) << "a's own KV came back";
  EXPECT_TRUE(fake_->violations().empty()) << fake_->violations().front();
  EXPECT_TRUE(daemon_->store().HasMemory(AgentId::Parse("a").value()));
}

// An agent whose answer called tools is about to come back: a new agent
// takes the slot of one whose answer stopped (a person replies next), though
// that one was used more recently. --eviction lru takes the older.
// (Without restores ahead, which would bring coder back under either.)
TEST_F(ProxyTest, ANewAgentTakesTheSlotOfOneWaitingForAPersonNotOfOneInAToolCall) {
  for (const Eviction eviction : {Eviction::kPredicted, Eviction::kLru}) {
    const bool predicted = eviction == Eviction::kPredicted;
    Start(2, [&](DaemonOptions& o) {
      o.eviction = eviction;
      o.return_aware.prefetch = false;  // eviction alone: no restore ahead of coder's return
    });
    fake_->SetFinishReason("tool_calls");
    EXPECT_EQ(Turn("coder"), "cold");
    fake_->SetFinishReason("stop");
    EXPECT_EQ(Turn("writer"), "cold");  // more recent than coder
    EXPECT_EQ(Turn("newcomer"), "cold");
    EXPECT_EQ(Turn("coder"), predicted ? "resident" : "restored") << "predicted: " << predicted;
  }
  // The client's word counts too: "done" gives the slot up first.
  Start(2);
  fake_->SetFinishReason("stop");
  EXPECT_EQ(Turn("writer"), "cold");
  ASSERT_EQ(
      Post("/agents/closer/v1/chat/completions", Chat("closer", "bye"), {{"X-Agent-Next", "done"}})
          ->status,
      200);
  EXPECT_EQ(Turn("newcomer"), "cold");
  EXPECT_EQ(Turn("writer"), "resident") << "closer said it was done: its slot went";
}

// An agent evicted while in a tool call is restored ahead of its return once
// its slot's holder waits for a person; its request then finds it resident.
// --prefetch off leaves it to its request.
TEST_F(ProxyTest, AnAgentEvictedInAToolCallIsRestoredAheadOfItsReturn) {
  for (const bool prefetch : {true, false}) {
    Start(1, [&](DaemonOptions& o) { o.return_aware.prefetch = prefetch; });
    fake_->SetFinishReason("tool_calls");
    EXPECT_EQ(Turn("coder"), "cold");
    fake_->SetFinishReason("stop");
    // One slot: coder is saved on writer's way in; writer is done after it.
    httplib::Result writer = Post("/agents/writer/v1/chat/completions", Chat("writer", "hello"),
                                  {{"X-Agent-Next", "done"}});
    ASSERT_TRUE(writer && writer->status == 200);
    EXPECT_EQ(writer->get_header_value("X-Agentkv-Placement"), "cold");
    if (prefetch) {
      ASSERT_TRUE(testing::Eventually([&] { return daemon_->metrics().prefetches.load() == 1; }))
          << "failures " << daemon_->metrics().prefetch_failures.load() << " evictions "
          << daemon_->metrics().evictions.load() << " saves " << daemon_->metrics().saves.load();
    }
    EXPECT_EQ(Turn("coder", "hello again"), prefetch ? "resident" : "restored");
    EXPECT_EQ(daemon_->metrics().prefetch_hits.load(), prefetch ? 1 : 0);
    EXPECT_EQ(Turn("writer", "hello again"), "restored") << "its turn was saved first";
    EXPECT_TRUE(fake_->violations().empty()) << fake_->violations().front();
  }
}

TEST_F(ProxyTest, StreamsChunksAsTheyArriveWithoutBuffering) {
  fake_->HoldStreamsAt(2);  // role chunk and first token sent, then a pause
  std::promise<void> got_first_token;
  bool promised = false;
  std::string received;
  auto request = std::async(std::launch::async, [&] {
    return Stream("s", [&](const char* data, size_t n) {
      received.append(data, n);
      if (!promised && received.find("t0") != std::string::npos) {
        promised = true;
        got_first_token.set_value();
      }
      return true;
    });
  });
  // The first token reaches the client while upstream still holds the rest.
  ASSERT_EQ(got_first_token.get_future().wait_for(std::chrono::seconds(20)),
            std::future_status::ready);
  ASSERT_TRUE(fake_->WaitHeld(std::chrono::seconds(20)));
  fake_->Resume();
  httplib::Result res = request.get();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_NE(received.find("\"timings\""), std::string::npos);
  EXPECT_NE(received.rfind("data: [DONE]\n\n"), std::string::npos);
}

TEST_F(ProxyTest, AClientThatLeavesMidStreamCancelsUpstreamAndFreesTheSlot) {
  Start(1);
  fake_->SetStreamChunks(1000000);
  fake_->HoldStreamsAt(2);
  Stream("leaver", [](const char*, size_t) { return false; });  // hangs up at the first chunk
  ASSERT_TRUE(fake_->WaitHeld(std::chrono::seconds(20)));
  fake_->Resume();
  EXPECT_TRUE(fake_->WaitCancelled(std::chrono::seconds(20)))
      << "agentkv kept reading a stream nobody wanted";
  // The slot is usable: the same agent, then another, are served.
  fake_->SetStreamChunks(3);
  EXPECT_EQ(Post("/agents/leaver/v1/chat/completions", Chat("leaver", "x"))->status, 200);
  EXPECT_EQ(Post("/agents/other/v1/chat/completions", Chat("other", "y"))->status, 200);
}

TEST_F(ProxyTest, ManyAgentsInParallelAllCompleteOnTheirOwnKV) {
  std::vector<std::future<int>> results;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 8; ++i) {
      results.push_back(std::async(std::launch::async, [this, i, round] {
        const std::string agent = "p" + std::to_string(i);
        httplib::Result r = Post("/agents/" + agent + "/v1/chat/completions",
                                 Chat(agent, "turn" + std::to_string(round)));
        return r ? r->status : -1;
      }));
    }
    for (auto& f : results) EXPECT_EQ(f.get(), 200);
    results.clear();
  }
  std::vector<std::string> v = fake_->violations();
  EXPECT_TRUE(v.empty()) << v.size() << " violations, first: " << v.front();
}

TEST_F(ProxyTest, AFailedRestoreFallsBackToAColdPrefillOnAnErasedSlot) {
  Start(1);
  ASSERT_EQ(Post("/agents/a/completion", json{{"prompt", "agent:a|hello"}})->status, 200);
  ASSERT_EQ(Post("/agents/b/completion", json{{"prompt", "agent:b|hello"}})->status, 200);
  fake_->FailNextRestore();
  httplib::Result res = Post("/agents/a/completion", json{{"prompt", "agent:a|hello again"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("X-Agentkv-Placement"), "cold");
  EXPECT_EQ(json::parse(res->body)["timings"]["cache_n"], 0);
  EXPECT_TRUE(fake_->violations().empty());
}

TEST_F(ProxyTest, ASlotThatCannotBeErasedIsRefusedWith502AndNotUsed) {
  Start(1);
  ASSERT_EQ(Post("/agents/a/completion", json{{"prompt", "agent:a|x"}})->status, 200);
  fake_->FailErases(true);
  httplib::Result res = Post("/agents/b/completion", json{{"prompt", "agent:b|x"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_NE(json::parse(res->body)["error"]["message"].get<std::string>().find("erase"),
            std::string::npos);
  EXPECT_TRUE(fake_->violations().empty());
  fake_->FailErases(false);
  EXPECT_EQ(Post("/agents/b/completion", json{{"prompt", "agent:b|x"}})->status, 200);
}

TEST_F(ProxyTest, BadRequestsGetAJsonErrorAndTheDaemonKeepsServing) {
  Start(2, [](DaemonOptions& o) { o.proxy.max_body_bytes = 1 << 20; });
  struct Case {
    std::string path, body;
    httplib::Headers headers;
    int status;
  };
  const std::vector<Case> cases = {
      {"/v1/chat/completions", "{not json", {}, 400},
      {"/v1/chat/completions", "[1,2]", {}, 400},
      {"/agents/bad%20id/v1/chat/completions", Chat("x", "y").dump(), {}, 400},
      {"/v1/chat/completions", Chat("x", "y").dump(), {{"X-Agent-Id", "no/slash"}}, 400},
      {"/v1/chat/completions", json{{"user", "a@b.c"}}.dump(), {}, 400},
      {"/v1/chat/completions", json{{"n", 2}}.dump(), {}, 400},
      {"/slots/0?action=erase", "{}", {}, 403},
      {"/%73lots/0?action=erase", "{}", {}, 400},
      {"/v1/chat/completion%73", Chat("x", "y").dump(), {}, 400},
      {"/agents/a/v1/messages", "{}", {}, 501},
      {"/v1/chat/completions", std::string(2 << 20, ' '), {}, 413},
  };
  for (const Case& c : cases) {
    httplib::Result res = Client().Post(c.path, c.headers, c.body, "application/json");
    ASSERT_TRUE(res) << c.path;
    EXPECT_EQ(res->status, c.status) << c.path << " " << c.body.substr(0, 40);
    json err = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(err.is_object()) << res->body;
    EXPECT_EQ(err["error"]["code"], c.status);
    EXPECT_FALSE(err["error"]["message"].get<std::string>().empty());
  }
  EXPECT_EQ(Post("/agents/ok/v1/chat/completions", Chat("ok", "y"))->status, 200);
}

TEST_F(ProxyTest, UpstreamErrorsPassThroughUnchanged) {
  httplib::Result res = Post("/agents/a/v1/chat/completions", json{{"bad_param", true}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(res->body, R"({"error":{"code":400,"message":"fake: bad params"}})");
}

TEST_F(ProxyTest, OtherPathsPassThroughWithTheirQueryAndHeaders) {
  httplib::Result res = Client().Get("/agents/a/v1/models?q=42");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("X-Fake"), "models");
  EXPECT_EQ(json::parse(res->body)["query"], "42");
  EXPECT_EQ(Client().Get("/health")->status, 200);
}

TEST_F(ProxyTest, WhenEverySlotIsBusyAndTheQueueIsFullItAnswers503WithRetryAfter) {
  Start(1, [](DaemonOptions& o) { o.queue = QueueLimits{0, std::chrono::milliseconds(60000)}; });
  fake_->HoldStreamsAt(1);
  auto holder = std::async(std::launch::async, [&] {
    return Post("/agents/holder/v1/chat/completions", Chat("holder", "x", true));
  });
  ASSERT_TRUE(fake_->WaitHeld(std::chrono::seconds(20)));
  httplib::Result res = Post("/agents/late/v1/chat/completions", Chat("late", "x"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "2");
  EXPECT_EQ(json::parse(res->body)["error"]["code"], 503);
  fake_->Resume();
  EXPECT_EQ(holder.get()->status, 200);
}

// llama-server gone, maybe before the health watch noticed: an inference
// request whose placement meets it has it checked at once and waits for its
// return like any request while it is down (here not at all: 503, which
// tells the client to retry, not 502); a passthrough gets 502. Service
// resumes when it returns.
TEST_F(ProxyTest, AnUnreachableUpstreamIsWaitedForLikeADownOneAndServiceResumes) {
  Start(2, [](DaemonOptions& o) {
    o.health_interval = std::chrono::milliseconds(50);
    o.upstream_wait = std::chrono::seconds(0);
  });
  const int port = fake_->port();
  fake_.reset();
  httplib::Result res = Post("/agents/a/v1/chat/completions", Chat("a", "x"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  httplib::Result passthrough = Client().Get("/v1/models");
  ASSERT_TRUE(passthrough);
  EXPECT_EQ(passthrough->status, 502);
  // The client learns what failed, not where agentkv's llama-server listens.
  EXPECT_NE(passthrough->body.find("llama-server is unreachable"), std::string::npos)
      << passthrough->body;
  EXPECT_EQ(passthrough->body.find(std::to_string(port)), std::string::npos) << passthrough->body;
  EXPECT_EQ(passthrough->body.find("127.0.0.1"), std::string::npos) << passthrough->body;
  fake_ = std::make_unique<FakeLlamaServer>(2, dir_, port);
  ASSERT_EQ(fake_->port(), port);
  httplib::Client c = Client();
  ASSERT_TRUE(testing::Eventually([&] { return c.Get("/readyz")->status == 200; }));
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", "x"))->status, 200);
}

TEST_F(ProxyTest, WhileLlamaServerIsKnownDownRequestsWaitThenGet503) {
  Start(2, [](DaemonOptions& o) { o.upstream_wait = std::chrono::seconds(0); });
  fake_->SetHealthy(false);
  httplib::Client c = Client();
  ASSERT_TRUE(testing::Eventually([&] { return c.Get("/readyz")->status == 503; }));
  httplib::Result res = Post("/agents/a/v1/chat/completions", Chat("a", "x"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "2");
  fake_->SetHealthy(true);
  ASSERT_TRUE(testing::Eventually([&] { return c.Get("/readyz")->status == 200; }));
  EXPECT_EQ(Post("/agents/a/v1/chat/completions", Chat("a", "x"))->status, 200);
}

}  // namespace
}  // namespace agentkv

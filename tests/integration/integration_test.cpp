// agentkv against a real llama-server and the random-weight test model that
// scripts/setup.sh writes. These tests fail (they do not skip) when either is
// missing: run scripts/setup.sh first.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "app/daemon.h"
#include "integration/real_llama.h"

namespace agentkv {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using testing::Reply;
using testing::Words;

class RealLlamaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-it-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    LlamaProcessOptions launch;
    launch.binary = testing::LlamaServerBinary();
    launch.model = testing::TestModel();
    ASSERT_TRUE(fs::exists(launch.binary)) << launch.binary << ": run scripts/setup.sh";
    ASSERT_TRUE(fs::exists(launch.model)) << launch.model << ": run scripts/setup.sh";
    launch.slots = 2;
    launch.extra_args = {"--ctx-size",   "16384", "--threads", "2",
                         "--batch-size", "512",   "--metrics"};
    if (unified_kv_) launch.extra_args.push_back("--kv-unified");
    launch.log_file = dir_ / "llama-server.log";
    DaemonOptions o;
    o.proxy.port = 0;
    o.memory_dir = dir_ / "memory";
    o.launch = launch;
    // These tests compare an evicted agent with one never evicted, and that
    // is exact only when both computed their tokens in batches of the same
    // shapes: llama.cpp's CPU kernels may differ in the last bits between a
    // batch of 1 and one of 300 (they do on some CPUs), and a random model's
    // flat logits turn that into another greedy token. An agent that starts
    // from a prefix snapshot computes its prompt in other batches than one
    // that prefills it whole, so snapshots are off here (tests/integration/
    // prefix_test.cpp has theirs).
    o.prefix_min_tokens = 0;
    Result<std::unique_ptr<Daemon>> d = Daemon::Start(o);
    ASSERT_TRUE(d.ok()) << d.status().message();
    daemon_ = std::move(d.value());
  }
  void TearDown() override {
    daemon_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  Reply Send(const std::string& agent, const std::string& path, json body) {
    Reply r = testing::PostJson(daemon_->port(), "/agents/" + agent + path, body);
    EXPECT_EQ(r.status, 200) << agent << ": " << r.body.dump();
    return r;
  }

  Reply Chat(const std::string& agent, const json& messages, int max_tokens = 24) {
    return Send(agent, "/v1/chat/completions",
                {{"messages", messages}, {"max_tokens", max_tokens}, {"temperature", 0}});
  }

  void CheckReturningAgentsReuseAsMuchAsNeverEvicted();

  bool unified_kv_ = false;
  fs::path dir_;
  std::unique_ptr<Daemon> daemon_;
};

// llama-server with one KV buffer shared by all slots clears idle slots on
// every new task unless started with --cache-ram 0 --no-cache-idle-slots, as
// agentkv does: without those flags this suite's reuse test fails here.
class UnifiedKvRealLlamaTest : public RealLlamaTest {
 protected:
  void SetUp() override {
    unified_kv_ = true;
    RealLlamaTest::SetUp();
  }
};

json Msg(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

// Without this, equality of greedy outputs would prove nothing.
TEST_F(RealLlamaTest, TheTestModelsOutputDependsOnItsContext) {
  std::set<std::string> answers;
  for (unsigned seed : {1u, 2u, 3u}) {
    Reply r = Send("ctx" + std::to_string(seed), "/completion",
                   {{"prompt", Words(seed, 40)}, {"n_predict", 12}, {"temperature", 0}});
    answers.insert(r.body["content"].get<std::string>());
  }
  EXPECT_EQ(answers.size(), 3u) << "different prompts gave the same continuation";
}

// (a) 4 agents through 2 slots, 3 rounds of growing conversations.
TEST_F(RealLlamaTest, ReturningAgentsReuseAsMuchKVAsAgentsThatWereNeverEvicted) {
  CheckReturningAgentsReuseAsMuchAsNeverEvicted();
}

TEST_F(UnifiedKvRealLlamaTest, ReturningAgentsReuseAsMuchKVAsAgentsThatWereNeverEvicted) {
  CheckReturningAgentsReuseAsMuchAsNeverEvicted();
}

void RealLlamaTest::CheckReturningAgentsReuseAsMuchAsNeverEvicted() {
  constexpr int kAgents = 4, kRounds = 3;
  std::vector<json> convo(kAgents);
  std::vector<std::vector<Reply>> control(kAgents);
  for (int i = 0; i < kAgents; ++i) {
    convo[i] = json::array({Msg("system", Words(100 + i, 300))});
    json messages = convo[i];
    // The control agent runs its whole conversation alone: never evicted.
    for (int r = 0; r < kRounds; ++r) {
      messages.push_back(Msg("user", Words(1000 * i + r, 60)));
      control[i].push_back(Chat("control-" + std::to_string(i), messages));
      messages.push_back(Msg("assistant", control[i].back().content()));
    }
    convo[i] = messages;  // the exact messages, with the control's answers
  }
  // The same requests, round-robin: with 2 slots each agent is evicted
  // before it returns.
  std::vector<std::vector<Reply>> moved(kAgents);
  for (int r = 0; r < kRounds; ++r) {
    for (int i = 0; i < kAgents; ++i) {
      json messages(convo[i].begin(), convo[i].begin() + 2 + 2 * r);
      moved[i].push_back(Chat("agent-" + std::to_string(i), messages));
    }
  }
  for (int i = 0; i < kAgents; ++i) {
    for (int r = 1; r < kRounds; ++r) {
      const Reply& m = moved[i][static_cast<size_t>(r)];
      const Reply& c = control[i][static_cast<size_t>(r)];
      const Reply& prev = moved[i][static_cast<size_t>(r - 1)];
      SCOPED_TRACE("agent " + std::to_string(i) + " round " + std::to_string(r));
      EXPECT_EQ(m.placement, "restored");
      EXPECT_GE(m.cache_n(), c.cache_n());
      EXPECT_GE(m.cache_n() * 10, prev.prompt_tokens() * 9);
      EXPECT_LE(m.prompt_n(), c.prompt_n());
      std::printf(
          "[ figures ] agent %d round %d: restored cache_n=%lld prompt_n=%lld | "
          "never evicted cache_n=%lld prompt_n=%lld | previous prompt %lld tokens\n",
          i, r, m.cache_n(), m.prompt_n(), c.cache_n(), c.prompt_n(), prev.prompt_tokens());
    }
  }
}

// (b) Evicted and restored between every turn: the same greedy tokens.
TEST_F(RealLlamaTest, AConversationRestoredBetweenTurnsGeneratesTheSameTokens) {
  auto run = [&](const std::string& agent, bool evict) {
    std::vector<json> tokens;
    std::string prompt = Words(7, 200);
    for (int turn = 0; turn < 4; ++turn) {
      if (evict && turn > 0) {
        Send("filler-a", "/completion", {{"prompt", Words(50 + turn, 50)}, {"n_predict", 4}});
        Send("filler-b", "/completion", {{"prompt", Words(60 + turn, 50)}, {"n_predict", 4}});
      }
      Reply r = Send(
          agent, "/completion",
          {{"prompt", prompt}, {"n_predict", 24}, {"temperature", 0}, {"return_tokens", true}});
      if (turn > 0) {
        EXPECT_EQ(r.placement, evict ? "restored" : "resident") << agent << " turn " << turn;
        EXPECT_GT(r.cache_n(), 0);
      }
      tokens.push_back(r.body["tokens"]);
      prompt += r.body["content"].get<std::string>() + " " + Words(100 + turn, 30);
    }
    return tokens;
  };
  const std::vector<json> kept = run("kept", false);
  const std::vector<json> moved = run("moved", true);
  ASSERT_EQ(kept.size(), moved.size());
  for (size_t turn = 0; turn < kept.size(); ++turn) {
    EXPECT_FALSE(kept[turn].empty());
    EXPECT_EQ(kept[turn], moved[turn]) << "turn " << turn;
  }
}

// An agent that resends what it sent before (n_predict 1, as a client
// probing or retrying does) computes only the one prompt token llama-server
// always recomputes: no turn-end save is written for it, and a restore of
// the file it already had gives the same token as a resend to its slot
// never evicted (both compute that one token alone).
TEST_F(RealLlamaTest, AnAgentResendingItsPromptIsNotSavedAgainAndGetsTheSameTokens) {
  const json body = {
      {"prompt", Words(8, 300)}, {"n_predict", 1}, {"temperature", 0}, {"return_tokens", true}};
  Send("again", "/completion", body);
  const Reply resident = Send("again", "/completion", body);
  ASSERT_EQ(resident.placement, "resident");
  ASSERT_EQ(resident.body["timings"]["prompt_n"], 1) << resident.body.dump();
  daemon_->placer().DrainSaves();
  const long long saves = daemon_->placer().stats().saves;
  for (int turn = 1; turn <= 3; ++turn) {
    SCOPED_TRACE("turn " + std::to_string(turn));
    Send("filler-a", "/completion", {{"prompt", Words(70 + turn, 40)}, {"n_predict", 1}});
    Send("filler-b", "/completion", {{"prompt", Words(80 + turn, 40)}, {"n_predict", 1}});
    daemon_->placer().DrainSaves();
    const long long saves_before = daemon_->placer().stats().saves;
    const Reply r = Send("again", "/completion", body);
    EXPECT_EQ(r.placement, "restored");
    EXPECT_EQ(r.body["timings"]["prompt_n"], 1) << r.body.dump();
    EXPECT_EQ(r.body["tokens"], resident.body["tokens"]);
    daemon_->placer().DrainSaves();
    EXPECT_EQ(daemon_->placer().stats().saves, saves_before) << "the file already held it";
  }
  EXPECT_GT(daemon_->placer().stats().saves, saves) << "the fillers were saved";
}

// (c) 8 agents at once through 2 slots.
TEST_F(RealLlamaTest, EightParallelAgentsAllCompleteEachOnItsOwnKV) {
  constexpr int kAgents = 8;
  const std::string shared = Words(9, 120);  // a shared system prompt
  auto messages = [&](int i, int round) {
    json m = json::array({Msg("system", shared), Msg("user", Words(200 + i, 200))});
    if (round > 0) {
      m.push_back(Msg("assistant", "noted"));
      m.push_back(Msg("user", Words(300 + i, 20)));
    }
    return m;
  };
  std::vector<std::vector<Reply>> replies(kAgents);
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<Reply>> inflight;
    for (int i = 0; i < kAgents; ++i) {
      inflight.push_back(std::async(std::launch::async, [&, i, round] {
        return Chat("par-" + std::to_string(i), messages(i, round), 8);
      }));
    }
    for (int i = 0; i < kAgents; ++i) replies[i].push_back(inflight[i].get());
  }
  // Snapshots of the shared system prompt, if any were made.
  httplib::Client admin("127.0.0.1", daemon_->port());
  long long snapshot = 0;
  const json listed = json::parse(admin.Get("/admin/prefixes")->body);
  for (const json& p : listed["prefixes"]) {
    snapshot = std::max(snapshot, p["tokens"].get<long long>());
  }
  for (int i = 0; i < kAgents; ++i) {
    SCOPED_TRACE("agent " + std::to_string(i));
    ASSERT_EQ(replies[i][0].status, 200);
    ASSERT_EQ(replies[i][1].status, 200);
    // A first request runs on an erased slot or one holding a snapshot of
    // the shared prompt: reusing more would mean another agent's KV was
    // still there.
    EXPECT_LE(replies[i][0].cache_n(), snapshot);
    // A second request reuses its own first prompt, not just the shared part.
    EXPECT_GE(replies[i][1].cache_n() * 10, replies[i][0].prompt_tokens() * 9);
  }
}

// (d) Streaming yields the same content as non-streaming.
TEST_F(RealLlamaTest, StreamingYieldsTheSameContentAsNonStreaming) {
  const json messages = json::array({Msg("user", Words(11, 80))});
  const std::string expected = Chat("plain", messages, 32).content();

  httplib::Client c("127.0.0.1", daemon_->port());
  c.set_read_timeout(std::chrono::seconds(300));
  std::string buffer, streamed;
  int events = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/agents/streamer/v1/chat/completions";
  req.headers.emplace("Content-Type", "application/json");
  req.body =
      json{{"messages", messages}, {"max_tokens", 32}, {"temperature", 0}, {"stream", true}}.dump();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    for (size_t nl; (nl = buffer.find("\n\n")) != std::string::npos; buffer.erase(0, nl + 2)) {
      const std::string event = buffer.substr(0, nl);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      ++events;
      json j = json::parse(event.substr(6));
      if (!j["choices"].empty() && j["choices"][0]["delta"].contains("content") &&
          j["choices"][0]["delta"]["content"].is_string()) {
        streamed += j["choices"][0]["delta"]["content"].get<std::string>();
      }
    }
    return true;
  };
  httplib::Result res = c.send(req);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_GT(events, 2);
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(streamed, expected);
}

// llama-server's own answers say how a turn ended, whole or streamed, on
// each API: agentkv reads the same from both.
TEST_F(RealLlamaTest, TheLastTurnSaysHowTheRealAnswerEndedWholeOrStreamed) {
  const json messages = json::array({Msg("user", Words(12, 40))});
  Chat("whole", messages, 8);
  httplib::Client c("127.0.0.1", daemon_->port());
  c.set_read_timeout(std::chrono::seconds(300));
  httplib::Result streamed = c.Post(
      "/agents/streamed/v1/chat/completions",
      json{{"messages", messages}, {"max_tokens", 8}, {"temperature", 0}, {"stream", true}}.dump(),
      "application/json");
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200);
  Send("native", "/completion", {{"prompt", Words(12, 40)}, {"n_predict", 8}});
  auto finish = [&](const std::string& agent) {
    return json::parse(c.Get("/admin/agents/" + agent)->body)["last_turn"]["finish"];
  };
  // 8 tokens of a random model: cut at the limit, unless it drew its end
  // token first; never unknown.
  const json whole = finish("whole");
  EXPECT_TRUE(whole == "length" || whole == "stop") << whole;
  EXPECT_EQ(finish("streamed"), whole) << "the same answer, streamed";
  const json native = finish("native");
  EXPECT_TRUE(native == "length" || native == "stop") << native;
}

// A client that hangs up mid-stream: llama-server stops generating and the
// agent's slot serves its next request.
TEST_F(RealLlamaTest, AClientLeavingMidStreamLeavesTheSlotUsable) {
  httplib::Client c("127.0.0.1", daemon_->port());
  c.set_read_timeout(std::chrono::seconds(300));
  httplib::Request req;
  req.method = "POST";
  req.path = "/agents/leaver/completion";
  req.headers.emplace("Content-Type", "application/json");
  req.body =
      json{{"prompt", Words(12, 50)}, {"n_predict", 6000}, {"ignore_eos", true}, {"stream", true}}
          .dump();
  int chunks = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  httplib::Result gone = c.send(req);
  EXPECT_FALSE(gone) << "the client hung up";
  EXPECT_EQ(chunks, 3);

  Reply next = Send("leaver", "/completion", {{"prompt", Words(12, 50)}, {"n_predict", 4}});
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.placement, "resident");
  EXPECT_GT(next.cache_n(), 0) << "the agent's KV survived the cancel";
  // The next request ran on the same slot, so the abandoned generation had
  // ended by then: had it not been cancelled, it would have counted 6000.
  httplib::Client llama(daemon_->upstream_url());  // its own metrics, not agentkv's
  llama.set_bearer_token_auth(daemon_->upstream_key());
  httplib::Result metrics = llama.Get("/metrics");
  ASSERT_TRUE(metrics);
  const std::string name = "\nllamacpp:tokens_predicted_total ";
  const size_t at = metrics->body.find(name);
  ASSERT_NE(at, std::string::npos) << metrics->body;
  EXPECT_LT(std::stod(metrics->body.substr(at + name.size())), 3000);
}

}  // namespace
}  // namespace agentkv

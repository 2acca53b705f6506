// Prefix snapshots against a real llama-server on the test model: new
// agents that share a long system prompt start from one saved snapshot of
// it, answer as an agent with no memory would (the same log-probabilities
// for their first token, as far as batch shapes allow), and never reuse
// tokens of another API key or another agent's private turns.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "integration/real_daemon_fixture.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Reply;
using testing::Words;

class PrefixTest : public testing::RealDaemonTest {
 protected:
  void StartWithKeys() {
    StartDaemon([](DaemonOptions& o) {
      o.proxy.auth.api_keys = {"key-a", "key-b"};
      o.proxy.auth.admin_key = "admin";
    });
  }

  // A chat turn of `agent` (or a stateless one if `agent` is empty), which
  // must succeed.
  Reply Chat(const std::string& agent, const json& messages, const std::string& key = "") {
    Reply r = Send(agent, messages, key);
    EXPECT_EQ(r.status, 200) << agent << ": " << r.body.dump();
    return r;
  }
  Reply Send(const std::string& agent, const json& messages, const std::string& key,
             const std::string& parent = "") {
    httplib::Client c("127.0.0.1", daemon_->port());
    c.set_read_timeout(std::chrono::seconds(300));
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    if (!parent.empty()) headers.emplace("X-Agentkv-Parent", parent);
    const std::string path =
        agent.empty() ? "/v1/chat/completions" : "/agents/" + agent + "/v1/chat/completions";
    const json body = {{"messages", messages},
                       {"max_tokens", 12},
                       {"temperature", 0},
                       {"logprobs", true},
                       {"top_logprobs", 10}};
    httplib::Result res = c.Post(path, headers, body.dump(), "application/json");
    Reply r;
    if (!res) {
      ADD_FAILURE() << path << ": " << httplib::to_string(res.error());
      return r;
    }
    r.status = res->status;
    r.body = json::parse(res->body, nullptr, false);
    r.placement = res->get_header_value("X-Agentkv-Placement");
    return r;
  }

  json AdminGet(const std::string& path, const std::string& key = "") {
    httplib::Client c("127.0.0.1", daemon_->port());
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    httplib::Result r = c.Get(path, headers);
    return r ? json::parse(r->body, nullptr, false) : json();
  }

  static json Messages(const std::string& system, unsigned question) {
    return json::array({{{"role", "system"}, {"content", system}},
                        {{"role", "user"}, {"content", Words(question, 30)}}});
  }

  const std::string system_ = Words(21, 400);  // several hundred tokens
};

TEST_F(PrefixTest, NewAgentsStartFromTheSharedPrefixAndAnswerAsAnAgentWithNoMemory) {
  StartDaemon();
  EXPECT_EQ(Chat("first", Messages(system_, 1)).cache_n(), 0);
  // The second agent sharing it builds the snapshot, then its request reuses it.
  const Reply second = Chat("second", Messages(system_, 2));
  EXPECT_EQ(second.placement, "cold");
  const json prefixes = Admin(daemon_->port(), "/admin/prefixes")["prefixes"];
  ASSERT_EQ(prefixes.size(), 1u) << prefixes.dump();
  const long long shared = prefixes[0]["tokens"].get<long long>();
  EXPECT_GE(shared, 256);
  EXPECT_EQ(second.cache_n(), shared);
  // Built on the first agent's memory, idle in its slot: the shared tokens
  // were not prefilled again (see ASnapshotBuiltOnAnAgentsMemory...).
  EXPECT_EQ(Admin(daemon_->port(), "/admin/stats")["prefix_snapshots_from_memory"], 1);

  for (unsigned i = 3; i <= 5; ++i) {
    SCOPED_TRACE("agent " + std::to_string(i));
    const json messages = Messages(system_, i);
    const Reply warm = Chat("agent-" + std::to_string(i), messages);
    EXPECT_EQ(warm.placement, "prefix");
    EXPECT_EQ(warm.cache_n(), shared);
    const Reply cold = Chat("", messages);  // stateless: an erased slot
    EXPECT_EQ(cold.cache_n(), 0);
    ASSERT_EQ(testing::FirstTokenLogprobs(warm).size(), 10u) << warm.body.dump();
    EXPECT_EQ(testing::NextTokenDisagreement(warm, cold), "");
    // The measure tells contexts apart: another question is another answer.
    if (i == 5) {
      const Reply other = Chat("", Messages(system_, 6));
      ASSERT_EQ(testing::FirstTokenLogprobs(other).size(), 10u);
      EXPECT_NE(testing::NextTokenDisagreement(warm, other), "");
    }
  }
  daemon_->placer().DrainSaves();  // agent-5's turn-end save may still wait
  const json stats = Admin(daemon_->port(), "/admin/stats");
  EXPECT_EQ(stats["prefix_hits"], 3);
  EXPECT_EQ(stats["prefix_snapshots_written"], 1);
  EXPECT_EQ(stats["prefix_tokens_reused"], 3 * shared);
  EXPECT_EQ(stats["agents_on_disk"], 5) << "a snapshot is not an agent";
  const json agents = Admin(daemon_->port(), "/admin/agents");  // alive through the loop
  for (const json& a : agents["agents"]) {
    EXPECT_NE(a["id"].get<std::string>().rfind("prefix.", 0), 0u) << a.dump();
  }

  // Snapshots are memory files: they survive a restart of agentkv.
  daemon_->placer().DrainSaves();
  StartDaemon();
  EXPECT_EQ(Chat("after-restart", Messages(system_, 9)).placement, "prefix");

  // And they can be deleted.
  httplib::Client c("127.0.0.1", daemon_->port());
  const std::string id = prefixes[0]["id"];
  ASSERT_EQ(c.Delete("/admin/prefixes/" + id)->status, 200);
  EXPECT_EQ(c.Delete("/admin/prefixes/" + id)->status, 404);
  EXPECT_EQ(Chat("after-delete", Messages(system_, 10)).placement, "cold");
}

TEST_F(PrefixTest, NoSnapshotIsSharedAcrossApiKeys) {
  StartWithKeys();
  Chat("a1", Messages(system_, 1), "key-a");
  Chat("a2", Messages(system_, 2), "key-a");  // builds key A's snapshot
  EXPECT_EQ(Chat("a3", Messages(system_, 3), "key-a").placement, "prefix");
  // The same prompts under key B: nothing of key A's is reused.
  const Reply b1 = Chat("b1", Messages(system_, 1), "key-b");
  EXPECT_EQ(b1.placement, "cold");
  EXPECT_EQ(b1.cache_n(), 0);
  EXPECT_EQ(Chat("b2", Messages(system_, 2), "key-b").placement, "cold");  // builds B's
  EXPECT_EQ(Chat("b3", Messages(system_, 3), "key-b").placement, "prefix");
  const json prefixes = AdminGet("/admin/prefixes", "admin")["prefixes"];
  ASSERT_EQ(prefixes.size(), 2u) << prefixes.dump();
  EXPECT_NE(prefixes[0]["scope"], prefixes[1]["scope"]);
  EXPECT_EQ(AdminGet("/admin/stats", "admin")["prefix_hits"], 2);
}

TEST_F(PrefixTest, ASnapshotHoldsNoTokenOfAnotherAgentsPrivateTurns) {
  // Past 256 tokens: the owner's question that the third agent repeats
  // (224 tokens) is no snapshot of its own, so all it reuses is what it
  // started from.
  StartDaemon([](DaemonOptions& o) { o.prefix_min_tokens = 256; });
  // Two agents share the system prompt and one long private first question.
  const std::string secret = Words(77, 200);
  auto with_secret = [&](unsigned q) {
    json m = Messages(system_, q);
    m[1]["content"] = secret;
    m.push_back({{"role", "assistant"}, {"content", "ok"}});
    m.push_back({{"role", "user"}, {"content", Words(q, 20)}});
    return m;
  };
  Chat("owner", with_secret(1));
  Chat("other", Messages(system_, 2));  // shares only the system prompt with owner
  const json prefixes = Admin(daemon_->port(), "/admin/prefixes")["prefixes"];
  ASSERT_EQ(prefixes.size(), 1u);
  const long long shared = prefixes[0]["tokens"].get<long long>();
  // The snapshot was built on the owner's memory, its question included:
  // llama-server cut that slot back to the shared tokens before the save.
  EXPECT_EQ(Admin(daemon_->port(), "/admin/stats")["prefix_snapshots_from_memory"], 1);
  // A third agent that sends the owner's private question too reuses only
  // the shared part: the snapshot never held the owner's question.
  const Reply third = Chat("third", with_secret(3));
  EXPECT_EQ(third.placement, "prefix");
  EXPECT_LE(third.cache_n(), shared);
  EXPECT_GT(third.prompt_n(), 200);
}

// The agent a snapshot would be built on no longer holds the shared tokens
// (its memory was deleted and it started over): the slot is erased and the
// snapshot prefilled from nothing, holding nothing of that agent.
TEST_F(PrefixTest, ASnapshotIsBuiltFromNothingWhenTheOtherAgentsMemoryChanged) {
  StartDaemon();
  Chat("first", Messages(system_, 1));
  httplib::Client c("127.0.0.1", daemon_->port());
  ASSERT_EQ(c.Delete("/admin/agents/first")->status, 200);
  Chat("first", Messages(Words(99, 400), 1));  // a new memory, another system prompt
  const Reply second = Chat("second", Messages(system_, 2));
  const json stats = Admin(daemon_->port(), "/admin/stats");
  EXPECT_EQ(stats["prefix_snapshots_written"], 1);
  EXPECT_EQ(stats["prefix_snapshots_from_memory"], 0);
  const json prefixes = Admin(daemon_->port(), "/admin/prefixes")["prefixes"];
  ASSERT_EQ(prefixes.size(), 1u);
  EXPECT_EQ(second.cache_n(), prefixes[0]["tokens"].get<long long>());
  EXPECT_EQ(Chat("third", Messages(system_, 3)).placement, "prefix");
}

// A snapshot built on another agent's memory holds the KV a snapshot built
// from nothing holds: agents of key A (built on a1's memory) and of key B
// (b1's memory deleted first, so built from nothing) answer alike, the
// builder included, and as agents with no memory do past the builder.
// "Alike": the first answer token's log-probabilities agree (see
// NextTokenDisagreement); the snapshots' KV was computed in other batches.
TEST_F(PrefixTest, ASnapshotBuiltOnAnAgentsMemoryAnswersAsOneBuiltFromNothing) {
  StartWithKeys();
  Chat("a1", Messages(system_, 1), "key-a");
  const Reply a2 = Chat("a2", Messages(system_, 2), "key-a");
  Chat("b1", Messages(system_, 1), "key-b");
  daemon_->placer().DrainSaves();  // b1's turn-end save may still wait
  std::string b1;                  // as the admin API names it: b1@<key B's scope>
  const json agents = AdminGet("/admin/agents", "admin");
  for (const json& a : agents["agents"]) {
    const std::string id = a["id"].get<std::string>();
    if (id.rfind("b1@", 0) == 0) b1 = id;
  }
  ASSERT_FALSE(b1.empty()) << agents.dump();
  httplib::Client c("127.0.0.1", daemon_->port());
  ASSERT_EQ(c.Delete("/admin/agents/" + b1, {{"Authorization", "Bearer admin"}})->status, 200);
  const Reply b2 = Chat("b2", Messages(system_, 2), "key-b");
  const json stats = AdminGet("/admin/stats", "admin");
  EXPECT_EQ(stats["prefix_snapshots_written"], 2);
  EXPECT_EQ(stats["prefix_snapshots_from_memory"], 1) << "key A's only";
  EXPECT_EQ(a2.cache_n(), b2.cache_n());
  EXPECT_EQ(testing::NextTokenDisagreement(a2, b2), "");
  for (unsigned q = 3; q <= 6; ++q) {
    SCOPED_TRACE("question " + std::to_string(q));
    const Reply a = Chat("a" + std::to_string(q), Messages(system_, q), "key-a");
    const Reply b = Chat("b" + std::to_string(q), Messages(system_, q), "key-b");
    EXPECT_EQ(a.placement, "prefix");
    EXPECT_EQ(b.placement, "prefix");
    EXPECT_EQ(testing::NextTokenDisagreement(a, b), "");
    EXPECT_EQ(testing::NextTokenDisagreement(a, Chat("", Messages(system_, q), "key-a")), "");
  }
}

// A planner's sub-agent starts from a copy of the planner's memory, named in
// X-Agentkv-Parent, only under the planner's own API key.
TEST_F(PrefixTest, ASubAgentStartsWarmFromItsParentUnderTheSameKeyOnly) {
  StartWithKeys();
  json planner = Messages(Words(5, 300), 1);
  const Reply plan = Chat("planner", planner, "key-a");
  daemon_->placer().DrainSaves();
  planner.push_back({{"role", "assistant"}, {"content", plan.content()}});
  planner.push_back({{"role", "user"}, {"content", "Now write the tests."}});

  const Reply sub = Send("sub-1", planner, "key-a", "planner");
  ASSERT_EQ(sub.status, 200) << sub.body.dump();
  EXPECT_EQ(sub.placement, "restored");
  EXPECT_GE(sub.cache_n(), plan.prompt_tokens());
  // The planner keeps its own memory; the sub-agent has its own from now on.
  EXPECT_EQ(Send("sub-1", planner, "key-a", "planner").placement, "resident");

  // Each key has its own agents: key-b has no planner (a shared namespace
  // answers 403 instead, see OpsTest).
  const Reply foreign = Send("sub-2", planner, "key-b", "planner");
  EXPECT_EQ(foreign.status, 404);
  EXPECT_EQ(foreign.body["error"]["message"], "no agent planner to start from under this API key");
  EXPECT_EQ(Send("sub-3", planner, "key-a", "nobody").status, 404);
  EXPECT_EQ(Send("sub-4", planner, "key-a", "not an id").status, 400);
  const Reply anonymous = Send("", planner, "key-a", "planner");
  EXPECT_EQ(anonymous.status, 400);
  EXPECT_TRUE(anonymous.body["error"]["message"].is_string());
  const json agents = AdminGet("/admin/agents", "admin")["agents"];
  EXPECT_EQ(agents.size(), 2u) << "planner and sub-1 only: " << agents.dump();
}

}  // namespace
}  // namespace agentkv

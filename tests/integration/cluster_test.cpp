// Several agentkv nodes on one shared memory directory (docs/cluster.md: Several
// nodes), each with its own real llama-server, and nginx or HAProxy in front
// on the shipped configurations: agents move between nodes warm, survive a
// node's SIGKILL, never meet stale KV, and racing nodes leave one memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "integration/cluster_fixture.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;
using testing::Answer;
using testing::Clock;
using testing::ClusterNode;
using testing::GetJson;
using testing::PostTurn;
using testing::Words;

constexpr int kPredict = 8;

// Every turn sends the agent's whole conversation: what it sent before and
// a few more words. Seeds keep agents' prompts apart (no shared prefix).
struct Conversation {
  std::string agent;
  unsigned seed;
  std::string prompt;
  int turns = 0;
  std::string Next() const {
    const std::string more = Words(seed * 100 + static_cast<unsigned>(turns), 24);
    return prompt.empty() ? more : prompt + " " + more;
  }
};

class ClusterTest : public testing::ClusterTest {
 protected:
  // One turn straight to a node; it must succeed.
  Answer Turn(int port, Conversation& c) {
    const std::string prompt = c.Next();
    Answer a = PostTurn(port, c.agent, prompt, kPredict);
    EXPECT_EQ(a.status, 200) << c.agent << ": " << a.body.dump();
    c.prompt = prompt;
    ++c.turns;
    return a;
  }
};

// The agent goes A, B, A, B, ...: each node restores what the other saved,
// and reuses all of it. From the third turn on, A's slot still holds the
// agent's older KV: it is superseded, not served.
TEST_F(ClusterTest, AnAgentAlternatingBetweenTwoNodesIsRestoredEachTimeWithFullReuse) {
  StartNode(1);
  StartNode(2);
  Conversation c{"alternating", 1, ""};
  Answer first = Turn(node(1).port(), c);
  EXPECT_EQ(first.placement, "cold");
  long long context = first.prompt_tokens();
  for (int turn = 2; turn <= 7; ++turn) {
    SCOPED_TRACE("turn " + std::to_string(turn));
    // The turn before is saved (another node restores only saved turns).
    ASSERT_NO_FATAL_FAILURE(WaitSaved(c.agent, context));
    const int port = node(turn % 2 == 0 ? 2 : 1).port();
    Answer a = Turn(port, c);
    EXPECT_EQ(a.placement, "restored");
    EXPECT_GE(a.cache_n(), context - 1) << "the whole previous prompt is reused";
    context = a.prompt_tokens();
  }
  for (int i : {1, 2}) {
    EXPECT_EQ(GetJson(node(i).port(), "/admin/stats")["quarantined"], 0);
    EXPECT_EQ(GetJson(node(i).port(), "/admin/stats")["fallbacks"], 0);
  }
  EXPECT_GE(Metric(node(1).port(), "agentkv_superseded_total"), 2);
  EXPECT_GE(Metric(node(2).port(), "agentkv_superseded_total"), 2);
}

// A resident slot older than the directory's memory is not served: node A
// keeps the agent's first turn resident while node B serves two more; back
// on A the agent gets B's memory, not A's stale KV.
TEST_F(ClusterTest, ANodeWhoseSlotIsStaleRestoresTheNewestMemoryInstead) {
  StartNode(1);
  StartNode(2);
  Conversation c{"stale", 2, ""};
  const Answer on_a = Turn(node(1).port(), c);
  ASSERT_NO_FATAL_FAILURE(WaitSaved(c.agent, on_a.prompt_tokens()));
  Turn(node(2).port(), c);
  const Answer last_on_b = Turn(node(2).port(), c);
  EXPECT_EQ(last_on_b.placement, "resident");
  ASSERT_NO_FATAL_FAILURE(WaitSaved(c.agent, last_on_b.prompt_tokens()));
  const long long superseded = Metric(node(1).port(), "agentkv_superseded_total");
  const Answer back = Turn(node(1).port(), c);
  EXPECT_EQ(back.placement, "restored");
  // A's slot held only the first turn: reuse past it came from B's memory.
  EXPECT_GE(back.cache_n(), last_on_b.prompt_tokens() - 1);
  EXPECT_GT(back.cache_n(), on_a.prompt_tokens());
  EXPECT_EQ(Metric(node(1).port(), "agentkv_superseded_total"), superseded + 1);
}

// One agent's turns run on two nodes at once (as during a failover); each
// saves. The memory left is one of the two, whole: a third node restores it
// without a fallback or a quarantine.
TEST_F(ClusterTest, TwoNodesRacingOnOneAgentLeaveAValidMemory) {
  StartNode(1);
  StartNode(2);
  StartNode(3);
  Conversation c{"raced", 3, ""};
  const Answer first = Turn(node(3).port(), c);
  ASSERT_NO_FATAL_FAILURE(WaitSaved(c.agent, first.prompt_tokens()));
  long long base = first.prompt_tokens();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const long long saves_before = Metric(node(1).port(), "agentkv_saves_total") +
                                   Metric(node(2).port(), "agentkv_saves_total");
    // Two continuations of the same conversation, one on each node.
    Conversation on1 = c, on2 = c;
    on2.seed = 1000 + c.seed;
    Answer a1, a2;
    std::thread t1([&] { a1 = PostTurn(node(1).port(), c.agent, on1.Next(), kPredict); });
    std::thread t2([&] { a2 = PostTurn(node(2).port(), c.agent, on2.Next(), kPredict); });
    t1.join();
    t2.join();
    ASSERT_EQ(a1.status, 200) << a1.body.dump();
    ASSERT_EQ(a2.status, 200) << a2.body.dump();
    // Both turn-end saves have ended (written, or judged unneeded).
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Metric(node(1).port(), "agentkv_saves_total") +
                   Metric(node(2).port(), "agentkv_saves_total") <
               saves_before + 2 &&
           Clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_GE(Metric(node(1).port(), "agentkv_saves_total") +
                  Metric(node(2).port(), "agentkv_saves_total"),
              saves_before + 2);
    const std::string file = Saved(c.agent).second;
    ASSERT_TRUE(fs::exists(dir_ / "memory" / file)) << file;
    // Which one won, by the node its state file names: the next turn
    // continues that one.
    const bool second_won = file.find(".node-2.") != std::string::npos;
    ASSERT_TRUE(second_won || file.find(".node-1.") != std::string::npos) << file;
    c = second_won ? on2 : on1;
    c.prompt = c.Next();
    ++c.turns;
    c.seed = 3;
    base = second_won ? a2.prompt_tokens() : a1.prompt_tokens();
    // The third node restores it, checksum and all, and reuses it whole.
    const Answer next = Turn(node(3).port(), c);
    EXPECT_EQ(next.placement, "restored");
    EXPECT_GE(next.cache_n(), base - 1);
    const nlohmann::json stats = GetJson(node(3).port(), "/admin/stats");
    EXPECT_EQ(stats["quarantined"], 0);
    EXPECT_EQ(stats["fallbacks"], 0);
    ASSERT_NO_FATAL_FAILURE(WaitSaved(c.agent, next.prompt_tokens()));
  }
  for (int i : {1, 2, 3}) {
    EXPECT_EQ(GetJson(node(i).port(), "/admin/stats")["quarantined"], 0) << "node-" << i;
  }
  EXPECT_FALSE(fs::exists(dir_ / "memory" / "quarantine") &&
               !fs::is_empty(dir_ / "memory" / "quarantine"));
}

// The node that answered: the last address nginx tried ("A, B" when it
// found A dead and went on to B).
std::string AnsweredBy(const Answer& a) {
  const std::size_t comma = a.upstream.rfind(", ");
  return comma == std::string::npos ? a.upstream : a.upstream.substr(comma + 2);
}

// What one agent's client saw: every request it sent, in order.
struct Record {
  std::string agent;
  std::string prompt;
  Answer answer;
};

// Agents converse through nginx, each as fast as it can for the turns the
// test grants it. One node is killed with SIGKILL (agentkv and its
// llama-server) while one of its agents' requests runs: its agents continue
// on the other nodes, warm, and only requests it held in flight fail (the
// client sends the turn again). It then comes back, and agents that return
// to it get the directory's memory, not KV of their own from before.
TEST_F(ClusterTest, AKilledNodesAgentsContinueWarmOnOtherNodesThroughNginx) {
  for (int i : {1, 2, 3}) StartNode(i);
  StartBalancer("nginx");
  const int lb = balancer_->port();

  constexpr int kAgents = 6;
  constexpr int kLongAnswer = 48;  // turns long enough to be caught in flight
  std::mutex mu;
  std::condition_variable changed;
  bool paused = false, stopping = false;
  std::vector<int> granted(kAgents, 3), succeeded(kAgents, 0);
  std::vector<bool> in_flight(kAgents, false);
  std::vector<std::vector<Record>> records(kAgents);
  std::vector<std::thread> clients;
  for (int a = 0; a < kAgents; ++a) {
    clients.emplace_back([&, a] {
      const size_t i = static_cast<size_t>(a);
      Conversation c{"agent-" + std::to_string(a), 10u + static_cast<unsigned>(a), ""};
      while (true) {
        {
          std::unique_lock<std::mutex> lock(mu);
          changed.wait(lock, [&] { return stopping || (!paused && succeeded[i] < granted[i]); });
          if (stopping) return;
          in_flight[i] = true;
          changed.notify_all();
        }
        const std::string prompt = c.Next();
        Answer answer = PostTurn(lb, c.agent, prompt, kLongAnswer);
        std::lock_guard<std::mutex> lock(mu);
        in_flight[i] = false;
        records[i].push_back({c.agent, prompt, answer});
        if (answer.status == 200) {  // else the client sends the same turn again
          c.prompt = prompt;
          ++c.turns;
          ++succeeded[i];
        }
        changed.notify_all();
      }
    });
  }
  const auto stop_clients = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    changed.notify_all();
    for (std::thread& t : clients) {
      if (t.joinable()) t.join();
    }
  };
  // However the test ends, the clients stop first.
  const std::unique_ptr<void, std::function<void(void*)>> stop_at_end(
      &clients, [&](void*) { stop_clients(); });
  auto wait_for = [&](const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(mu);
    return changed.wait_for(lock, std::chrono::seconds(240), done);
  };
  auto all_granted_done = [&] {
    for (size_t i = 0; i < kAgents; ++i) {
      if (succeeded[i] < granted[i] || in_flight[i]) return false;
    }
    return true;
  };

  // Three turns each; then the node holding the most agents is the victim.
  ASSERT_TRUE(wait_for(all_granted_done));
  std::map<std::string, std::set<int>> agents_of;  // node address -> agents
  {
    std::lock_guard<std::mutex> lock(mu);
    for (int a = 0; a < kAgents; ++a) {
      agents_of[AnsweredBy(records[static_cast<size_t>(a)].back().answer)].insert(a);
    }
  }
  const auto victim_entry = std::max_element(
      agents_of.begin(), agents_of.end(),
      [](const auto& x, const auto& y) { return x.second.size() < y.second.size(); });
  const std::string victim_address = victim_entry->first;
  const std::set<int> moved = victim_entry->second;
  int victim = 0;
  for (auto& [i, n] : nodes_) {
    if (victim_address == "127.0.0.1:" + std::to_string(n->port())) victim = i;
  }
  ASSERT_NE(victim, 0) << victim_address;
  const int victim_port = node(victim).port();

  // Three more turns each; the victim dies as soon as it has placed one of
  // its agents' requests in a slot (it logs that before passing the request
  // to llama-server). New turns wait while it dies and its agents' memory is
  // read; turns already sent run on.
  const auto placed = [&] {
    const std::string log = node(victim).log();
    std::size_t n = 0;
    for (std::size_t at = 0; (at = log.find("placed agent agent-", at)) != std::string::npos;
         ++at) {
      ++n;
    }
    return n;
  };
  const std::size_t placed_before = placed();
  {
    std::lock_guard<std::mutex> lock(mu);
    for (int& g : granted) g += 3;
  }
  changed.notify_all();
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (placed() == placed_before && Clock::now() < deadline) std::this_thread::yield();
  ASSERT_GT(placed(), placed_before) << "no request reached " << node(victim).name();
  {
    std::lock_guard<std::mutex> lock(mu);
    paused = true;
  }
  const Clock::time_point killed_at = Clock::now();
  node(victim).Kill();
  std::map<int, long long> saved_at_kill;
  for (int a : moved) saved_at_kill[a] = Saved("agent-" + std::to_string(a)).first;
  {
    std::lock_guard<std::mutex> lock(mu);
    paused = false;
  }
  changed.notify_all();
  ASSERT_TRUE(wait_for(all_granted_done));

  // The node comes back on its port; nginx, reloaded, sends its agents
  // back to it (without a reload, once its fail_timeout has passed).
  ClusterNode& back = StartNode(victim, victim_port);
  balancer_->Reload();
  const Clock::time_point back_at = Clock::now();
  std::set<int> returned;
  for (int round = 0; round < 20 && returned.empty(); ++round) {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (int a : moved) ++granted[static_cast<size_t>(a)];
    }
    changed.notify_all();
    ASSERT_TRUE(wait_for(all_granted_done));
    std::lock_guard<std::mutex> lock(mu);
    for (int a : moved) {
      if (AnsweredBy(records[static_cast<size_t>(a)].back().answer) == victim_address) {
        returned.insert(a);
      }
    }
  }
  stop_clients();
  EXPECT_FALSE(returned.empty()) << "no agent went back to " << back.name();

  int failed = 0;
  for (int a = 0; a < kAgents; ++a) {
    const std::vector<Record>& r = records[static_cast<size_t>(a)];
    int agent_failures = 0;
    bool first_after_kill = true, first_back = true;
    for (size_t i = 0; i < r.size(); ++i) {
      const Answer& x = r[i].answer;
      SCOPED_TRACE(r[i].agent + " turn " + std::to_string(i) + " via " + x.upstream);
      if (x.status != 200) {
        ++failed;
        ++agent_failures;
        // Only a request the dead node held fails: it was sent before the kill.
        EXPECT_LT(x.sent, killed_at) << "status " << x.status << " " << x.body.dump();
        continue;
      }
      if (x.sent < killed_at) continue;
      if (moved.count(a) && first_after_kill) {
        first_after_kill = false;
        // Warm on another node: the memory it had at the kill, reused whole.
        EXPECT_NE(AnsweredBy(x), victim_address);
        EXPECT_EQ(x.placement, "restored");
        EXPECT_GE(x.cache_n(), saved_at_kill[a] - kLongAnswer);
      }
      if (x.sent > back_at && AnsweredBy(x) == victim_address && first_back) {
        first_back = false;
        // Back on the node that died: the directory's memory (its newest
        // turn, saved by another node), nothing of its own from before.
        EXPECT_EQ(x.placement, "restored");
        EXPECT_GE(x.cache_n(), r[i - 1].answer.prompt_tokens() - 1);
      }
    }
    EXPECT_LE(agent_failures, 1) << "agent-" << a << ": more than its request in flight failed";
  }
  EXPECT_LE(failed, static_cast<int>(moved.size()));
  std::printf("killed %s holding %zu agents: %d requests in flight failed\n", back.name().c_str(),
              moved.size(), failed);
  for (auto& [i, n] : nodes_) {
    EXPECT_EQ(GetJson(n->port(), "/admin/stats")["quarantined"], 0) << n->name();
  }
}

// HAProxy on configs/haproxy.cfg: an agent named by its path or by its
// header goes to one node every time, and around a dead one (health checks
// on /readyz, a refused connection retried on the next node), warm.
TEST_F(ClusterTest, HaproxyKeepsAnAgentOnOneNodeAndMovesItWarmWhenTheNodeDies) {
  StartNode(1);
  StartNode(2);
  StartBalancer("haproxy");
  const int lb = balancer_->port();
  Conversation c{"proxied", 4, ""};
  std::string home;
  for (int turn = 0; turn < 4; ++turn) {
    const std::string prompt = c.Next();
    Answer a;
    if (turn % 2 == 0) {
      a = PostTurn(lb, c.agent, prompt, kPredict);
    } else {  // the header form routes the same way
      httplib::Client client("127.0.0.1", lb);
      client.set_read_timeout(std::chrono::seconds(120));
      const nlohmann::json body = {{"prompt", prompt}, {"n_predict", kPredict}};
      httplib::Result r =
          client.Post("/completion", {{"X-Agent-Id", c.agent}}, body.dump(), "application/json");
      ASSERT_TRUE(r);
      a.status = r->status;
      a.body = nlohmann::json::parse(r->body, nullptr, false);
      a.placement = r->get_header_value("X-Agentkv-Placement");
      a.upstream = r->get_header_value("X-Agentkv-Upstream");
    }
    ASSERT_EQ(a.status, 200) << a.body.dump();
    if (turn == 0) home = a.upstream;
    EXPECT_EQ(a.upstream, home);
    EXPECT_EQ(a.placement, turn == 0 ? "cold" : "resident");
    c.prompt = prompt;
    ++c.turns;
    ASSERT_NO_FATAL_FAILURE(WaitSaved(c.agent, a.prompt_tokens()));
  }
  const long long saved = Saved(c.agent).first;
  node(home == "node-1" ? 1 : 2).Kill();
  const Answer moved = Turn(lb, c);
  EXPECT_NE(moved.upstream, home);
  EXPECT_EQ(moved.placement, "restored");
  EXPECT_GE(moved.cache_n(), saved - kPredict);
}

}  // namespace
}  // namespace agentkv

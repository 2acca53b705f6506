// Adversarial requests, one table, against a running daemon (API keys on,
// two slots): path, header, body and method tricks. Each row gets the
// answer it names, a refusal in the JSON error shape or a correct 200;
// after them all, the fake llama-server saw no request on another agent's
// KV, every completion it got carried the slot agentkv chose, and the
// daemon still answers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "component/fake_daemon_fixture.h"
#include "component/raw_client.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Chat;
using testing::RawClient;

constexpr char kKey[] = "Authorization: Bearer key-a\r\n";
constexpr char kAdminKey[] = "Authorization: Bearer key-admin\r\n";
constexpr char kJson[] = "Content-Type: application/json\r\n";

struct Row {
  std::string name;
  std::string method;
  std::string target;
  std::string headers;  // full lines; Host, Connection and Content-Length are added
  std::string body;
  int status;  // expected
};

std::string ChatBody(const std::string& agent) { return Chat(agent, "hi").dump(); }

std::string ChatWith(const std::string& agent, const json& extra) {
  json body = Chat(agent, "hi");
  body.update(extra);
  return body.dump();
}

// "agent:<id>|hello" as token ids, which the fake reads back as that text.
json TokensFor(const std::string& agent) {
  json tokens = json::array();
  for (char c : "agent:" + agent + "|hello") tokens.push_back(static_cast<int>(c));
  return tokens;
}

std::vector<Row> PathRows() {
  const std::string k = std::string(kKey) + kJson;
  return {
      {"dot-dot agent is not the admin API", "GET", "/agents/../admin/stats", kKey, "", 404},
      {"double slash", "POST", "//v1/chat/completions", k, ChatBody("a"), 404},
      {"agent prefix twice", "POST", "/agents/a/agents/b/v1/chat/completions", k, ChatBody("a"),
       404},
      {"percent in the route", "POST", "/agents/a/v1/chat/completion%73", k, ChatBody("a"), 400},
      {"percent in the id", "POST", "/agents/a%2Fb/v1/chat/completions", k, ChatBody("a"), 400},
      {"id of 129", "POST", "/agents/" + std::string(129, 'x') + "/v1/chat/completions", k,
       ChatBody(std::string(129, 'x')), 400},
      {"id of 128", "POST", "/agents/" + std::string(128, 'x') + "/v1/chat/completions", k,
       ChatBody(std::string(128, 'x')), 200},
      {"id with @", "POST", "/agents/a@0f3a/v1/chat/completions", k, ChatBody("a"), 400},
      {"id with ~", "POST", "/agents/~p0/v1/chat/completions", k, ChatBody("a"), 400},
      {"empty id", "POST", "/agents//v1/chat/completions", k, ChatBody("a"), 400},
      {"agent root", "POST", "/agents/a", k, ChatBody("a"), 404},
      {"agent healthz", "GET", "/agents/a/healthz", kKey, "", 404},
      {"admin fork under an agent", "POST", "/agents/a/admin/agents/b/fork", k, "{}", 404},
      {"slot action under an agent", "POST", "/agents/a/slots/0?action=save", k, "{}", 403},
      {"admin with an agent key", "GET", "/admin/agents/a", kKey, "", 401},
      {"admin", "GET", "/admin/stats", kAdminKey, "", 200},
      {"HEAD admin", "HEAD", "/admin/stats", kAdminKey, "", 200},
      {"id_slot in the query", "POST", "/v1/chat/completions?id_slot=1&slot_id=1",
       k + "X-Agent-Id: q\r\n", ChatBody("q"), 200},
  };
}

std::vector<Row> HeaderRows() {
  const std::string j = kJson;
  return {
      {"X-Agent-Id twice", "POST", "/v1/chat/completions",
       j + kKey + "X-Agent-Id: a\r\nX-Agent-Id: b\r\n", ChatBody("a"), 400},
      {"X-Agent-Id in two cases", "POST", "/v1/chat/completions",
       j + kKey + "X-Agent-Id: a\r\nx-agent-id: b\r\n", ChatBody("a"), 400},
      {"the path agent wins over X-Agent-Id", "POST", "/agents/p/v1/chat/completions",
       j + kKey + "X-Agent-Id: b\r\n", ChatBody("p"), 200},
      {"X-Agent-Id with a space", "POST", "/v1/chat/completions", j + kKey + "X-Agent-Id: a b\r\n",
       ChatBody("a"), 400},
      {"X-Agent-Id with @", "POST", "/v1/chat/completions", j + kKey + "X-Agent-Id: a@0f3a\r\n",
       ChatBody("a"), 400},
      {"no key", "POST", "/agents/a/v1/chat/completions", j, ChatBody("a"), 401},
      {"the admin key is not an agent key", "POST", "/agents/a/v1/chat/completions", j + kAdminKey,
       ChatBody("a"), 401},
      {"lowercase bearer", "POST", "/agents/a/v1/chat/completions",
       j + "Authorization: bearer key-a\r\n", ChatBody("a"), 401},
      {"two spaces", "POST", "/agents/a/v1/chat/completions",
       j + "Authorization: Bearer  key-a\r\n", ChatBody("a"), 401},
      {"basic auth", "POST", "/agents/a/v1/chat/completions",
       j + "Authorization: Basic a2V5LWE6\r\n", ChatBody("a"), 401},
      {"a key prefix", "POST", "/agents/a/v1/chat/completions", j + "Authorization: Bearer key\r\n",
       ChatBody("a"), 401},
      {"Authorization twice", "POST", "/agents/a/v1/chat/completions",
       j + "Authorization: Bearer nope\r\n" + kKey, ChatBody("a"), 400},
      {"X-Api-Key only", "POST", "/agents/a/v1/chat/completions", j + "X-Api-Key: key-a\r\n",
       ChatBody("a"), 401},
      {"another Host", "GET", "/v1/models", "Host: evil.example\r\n" + std::string(kKey), "", 403},
      {"another Origin", "GET", "/v1/models",
       "Origin: https://evil.example\r\n" + std::string(kKey), "", 403},
      {"parent with a bad id", "POST", "/agents/c/v1/chat/completions",
       j + kKey + "X-Agentkv-Parent: ../a\r\n", ChatBody("c"), 400},
      {"Content-Length twice", "POST", "/agents/a/v1/chat/completions",
       j + kKey + "Content-Length: 3\r\n", ChatBody("a"), 400},
      {"Transfer-Encoding gzip", "POST", "/agents/a/v1/chat/completions",
       j + kKey + "Transfer-Encoding: gzip\r\n", ChatBody("a"), 400},
      // ErrorJson used to throw on the non-UTF-8 byte it quotes; from the
      // Expect: 100-continue handler nothing caught it and the process ended.
      {"Expect with a non-UTF-8 encoding", "POST", "/agents/a/v1/chat/completions",
       j + kKey + "Expect: 100-continue\r\nContent-Encoding: x\xff\r\n", ChatBody("a"), 415},
      {"non-UTF-8 Origin", "GET", "/v1/models", "Origin: https://\xc3\x28\r\n" + std::string(kKey),
       "", 403},
  };
}

std::vector<Row> BodyRows() {
  const std::string k = std::string(kKey) + kJson;
  const std::string chat = "/agents/b/v1/chat/completions";
  // 1,000,000 levels: serializing them (PromptKeyOf, the forwarded body)
  // recurses once a level.
  const std::string deep =
      R"({"messages":[)" + std::string(1000000, '[') + std::string(1000000, ']') + "]}";
  return {
      {"array body", "POST", chat, k, "[1,2]", 400},
      {"string body", "POST", chat, k, R"("hi")", 400},
      {"null body", "POST", chat, k, "null", 400},
      {"no body", "POST", chat, k, "", 400},
      {"not JSON", "POST", chat, k, "{", 400},
      {"n 2", "POST", chat, k, ChatWith("b", {{"n", 2}}), 400},
      {"n_cmpl 3", "POST", "/agents/b/completion", k,
       json{{"prompt", "agent:b|x"}, {"n_cmpl", 3}}.dump(), 400},
      {"n that llama-server reads as 2", "POST", chat, k, ChatWith("b", {{"n", -4294967294LL}}),
       400},
      {"n 1", "POST", chat, k, ChatWith("b", {{"n", 1}}), 200},
      {"id_slot as a string", "POST", chat, k, ChatWith("b", {{"id_slot", "1"}}), 200},
      {"id_slot and slot_id", "POST", chat, k, ChatWith("b", {{"id_slot", 1}, {"slot_id", 1}}),
       200},
      {"id_slot twice", "POST", chat, k,
       R"({"id_slot":0,"messages":[{"role":"user","content":"agent:b|hi"}],"id_slot":1})", 200},
      {"cache_prompt off", "POST", chat, k, ChatWith("b", {{"cache_prompt", false}}), 200},
      {"huge numbers", "POST", chat, k,
       R"({"messages":[{"role":"user","content":"agent:b|hi"}],"max_tokens":1e308,)"
       R"("id_slot":123456789012345678901234567890,"seed":-99999999999999999999})",
       200},
      {"number out of range", "POST", chat, k,
       R"({"messages":[{"role":"user","content":"agent:b|hi"}],"max_tokens":1e400})", 400},
      {"nested arrays", "POST", chat, k,
       R"({"messages":[{"role":"user","content":"agent:b|hi"}],"tools":[[[[[]]]]],"id_slot":[[1]]})",
       200},
      {"nesting over the bound", "POST", chat, k,
       R"({"messages":)" + std::string(200, '[') + std::string(200, ']') + "}", 400},
      {"deep nesting as text/plain", "POST", chat,
       std::string(kKey) + "Content-Type: text/plain\r\n", deep, 400},
      {"prompt_cache_key a number", "POST", "/v1/chat/completions", k,
       ChatWith("b", {{"prompt_cache_key", 5}}), 400},
      {"user with @", "POST", "/v1/chat/completions", k, ChatWith("b", {{"user", "b@0f3a"}}), 400},
      {"prompt_cache_key", "POST", "/v1/chat/completions", k,
       ChatWith("b", {{"prompt_cache_key", "b"}, {"user", "zz"}}), 200},
      {"token-array prompt", "POST", "/agents/t/completion", k,
       json{{"prompt", TokensFor("t")}, {"id_slot", 1}, {"cache_prompt", false}}.dump(), 200},
      {"token-array prompt, stateless", "POST", "/completion", k,
       json{{"prompt", TokensFor("")}, {"n", 1}}.dump(), 200},
  };
}

// Every method agentkv does not serve, on every kind of route: refused
// (501 for a method agentkv has no use for), never forwarded.
std::vector<Row> MethodRows() {
  std::vector<Row> rows;
  const char* const paths[] = {"/v1/chat/completions",
                               "/agents/a/v1/chat/completions",
                               "/completion",
                               "/admin/stats",
                               "/admin/agents/a",
                               "/healthz",
                               "/metrics",
                               "/slots/0",
                               "/v1/models",
                               "/agents/a/props"};
  for (const char* path : paths) {
    for (const char* method : {"PUT", "PATCH", "TRACE"}) {
      const bool known = std::string(method) != "TRACE";
      const bool admin = std::string(path).rfind("/admin/", 0) == 0;
      // PUT and PATCH pass the head checks and match no route: 404 (the
      // admin API, which needs the admin key, answers 401 first).
      rows.push_back({std::string(method) + " " + path, method, path, kKey, "",
                      known ? (admin ? 401 : 404) : 501});
    }
  }
  rows.push_back({"HEAD chat", "HEAD", "/v1/chat/completions", kKey, "", 404});
  rows.push_back({"HEAD healthz", "HEAD", "/healthz", "", "", 200});
  rows.push_back({"HEAD models", "HEAD", "/agents/a/v1/models", kKey, "", 200});
  rows.push_back({"GET with a body", "GET", "/v1/models", kKey, "{}", 400});
  rows.push_back({"DELETE chat", "DELETE", "/agents/a/v1/chat/completions", kKey, "", 404});
  return rows;
}

class AdversarialTest : public testing::FakeDaemonTest {
 protected:
  void SetUp() override {
    Start(2, [](DaemonOptions& o) {
      o.proxy.auth.api_keys = {"key-a"};
      o.proxy.auth.admin_key = "key-admin";
    });
  }

  // Sends `row` on a connection of its own and checks the answer. For a
  // completion agentkv forwarded, checks the fake got it on the slot
  // agentkv names in X-Agentkv-Slot.
  void Check(const Row& row) {
    SCOPED_TRACE(row.name);
    const std::size_t calls_before = fake_->calls().size();
    RawClient c(daemon_->port());
    ASSERT_TRUE(c.connected());
    std::string head = row.method + " " + row.target + " HTTP/1.1\r\n";
    if (row.headers.find("Host:") == std::string::npos) head += "Host: localhost\r\n";
    head += row.headers + "Connection: close\r\n";
    if (!row.body.empty()) head += "Content-Length: " + std::to_string(row.body.size()) + "\r\n";
    ASSERT_TRUE(c.Send(head + "\r\n"));
    c.SendUnlessAnswered(row.body);  // false if refused before the body: fine
    const std::string answer = c.ReadAll(std::chrono::seconds(20));
    const int status = testing::StatusOf(answer);
    ASSERT_EQ(status, row.status) << answer.substr(0, 400);
    const std::size_t end_of_head = answer.find("\r\n\r\n");
    ASSERT_NE(end_of_head, std::string::npos) << "no complete answer: " << answer.substr(0, 400);
    const std::string answer_head = answer.substr(0, end_of_head + 2);  // each line's CRLF
    if (status >= 400 && row.method != "HEAD") {
      const json error = testing::BodyOf(answer);
      ASSERT_TRUE(error.is_object() && error.contains("error")) << answer.substr(0, 400);
      EXPECT_EQ(error["error"].value("code", 0), status);
      EXPECT_TRUE(error["error"].contains("message") && error["error"]["message"].is_string());
      EXPECT_TRUE(error["error"].contains("type") && error["error"]["type"].is_string());
    }
    const std::vector<testing::FakeLlamaServer::Call> calls = fake_->calls();
    int completions = 0;
    for (std::size_t i = calls_before; i < calls.size(); ++i) {
      if (calls[i].route != "completion") continue;
      ++completions;
      const std::string slot_header = "X-Agentkv-Slot: " + std::to_string(calls[i].slot) + "\r\n";
      EXPECT_NE(answer_head.find(slot_header), std::string::npos)
          << "ran on slot " << calls[i].slot << "; " << answer_head;
    }
    EXPECT_EQ(completions, status == 200 && row.method == "POST" &&
                                   answer_head.find("X-Agentkv-Slot") != std::string::npos
                               ? 1
                               : 0);
    if (status >= 400) {
      EXPECT_EQ(completions, 0) << "a refused request reached llama-server";
    }
  }
};

TEST_F(AdversarialTest, EveryTrickIsRefusedWithAJsonErrorOrServedOnTheAgentsOwnSlot) {
  std::vector<Row> rows = PathRows();
  for (auto more : {HeaderRows(), BodyRows(), MethodRows()}) {
    rows.insert(rows.end(), more.begin(), more.end());
  }
  for (const Row& row : rows) Check(row);

  EXPECT_TRUE(fake_->violations().empty()) << fake_->violations().front();
  int completions = 0;
  for (const testing::FakeLlamaServer::Call& call : fake_->calls()) {
    if (call.route != "completion") continue;
    ++completions;
    SCOPED_TRACE(call.body.substr(0, 200));
    const json sent = json::parse(call.body);
    ASSERT_TRUE(sent.contains("id_slot") && sent["id_slot"].is_number_integer());
    EXPECT_GE(call.slot, 0);
    EXPECT_LT(call.slot, 2);
    EXPECT_EQ(sent["id_slot"], call.slot);
    EXPECT_EQ(sent.value("cache_prompt", false), true);
    EXPECT_FALSE(sent.contains("n") && sent["n"] != 1);
    EXPECT_FALSE(sent.contains("n_cmpl"));
  }
  EXPECT_EQ(completions, 13) << "the rows that should be served";
  EXPECT_EQ(Client().Get("/healthz")->status, 200);
  httplib::Client c = Client();
  c.set_bearer_token_auth("key-a");
  httplib::Result again =
      c.Post("/agents/b/v1/chat/completions", Chat("b", "again").dump(), "application/json");
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_TRUE(fake_->violations().empty()) << fake_->violations().front();
}

}  // namespace
}  // namespace agentkv

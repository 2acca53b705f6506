// What the front lets through to llama-server, and what it lets a browser
// do, against the fake llama-server (which, as llama-server, answers every
// request with Access-Control-Allow-Origin: *).
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "component/fake_daemon_fixture.h"

namespace agentkv {
namespace {

using nlohmann::json;
using testing::Chat;
using PolicyTest = testing::FakeDaemonTest;

// The error's HTTP code in the JSON error shape; -1 if the body is not one.
int ErrorCodeOf(const httplib::Result& res) {
  const json body = json::parse(res->body, nullptr, false);
  if (!body.is_object() || !body.contains("error") || !body["error"].contains("message")) return -1;
  return body["error"].value("code", -1);
}

TEST_F(PolicyTest, GlobalRoutesAreRefusedWhenNoAdminKeyIsSet) {
  httplib::Client c = Client();
  httplib::Result lora = c.Post("/lora-adapters", R"([{"id":0,"scale":1}])", "application/json");
  ASSERT_TRUE(lora);
  EXPECT_EQ(lora->status, 403);
  EXPECT_EQ(ErrorCodeOf(lora), 403);
  EXPECT_NE(lora->body.find("admin key"), std::string::npos) << lora->body;
  EXPECT_EQ(c.Get("/slots")->status, 403);
  EXPECT_EQ(c.Get("/agents/a/v1/stream?conv_id=other")->status, 403);
  EXPECT_EQ(CountCalls("/lora-adapters") + CountCalls("/slots") + CountCalls("/v1/stream"), 0);
}

TEST_F(PolicyTest, GlobalRoutesPassOnlyWithTheAdminKeyWhichLlamaServerNeverSees) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"agent-key"};
    o.proxy.auth.admin_key = "admin-key";
  });
  auto lora = [&](const std::string& key) {
    httplib::Client c = Client();
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c.Post("/lora-adapters", "[]", "application/json");
  };
  EXPECT_EQ(lora("")->status, 401);
  EXPECT_EQ(lora("agent-key")->status, 401) << "an agent's key cannot change every agent";
  EXPECT_EQ(CountCalls("/lora-adapters"), 0);
  httplib::Result ok = lora("admin-key");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(CountCalls("/lora-adapters"), 1);
  EXPECT_EQ(fake_->last_authorization(), "");
  httplib::Client agent = Client();
  agent.set_bearer_token_auth("agent-key");
  EXPECT_EQ(agent.Get("/v1/models")->status, 200) << "read-only routes take an API key";
}

TEST_F(PolicyTest, RoutesLlamaServerDoesNotHaveAreRefusedWithAJsonError) {
  httplib::Client c = Client();
  for (const char* path : {"/", "/index.html", "/agents/a/", "/v1/chat/completions"}) {
    httplib::Result res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_EQ(ErrorCodeOf(res), 404) << path << ": " << res->body;
  }
  EXPECT_EQ(c.Post("/predict", "{}", "application/json")->status, 404);
}

TEST_F(PolicyTest, TheConversationIdHeaderIsNotForwarded) {
  httplib::Headers h = {{"X-Conversation-Id", "conv-1"}, {"X-Request-Id", "r-1"}};
  httplib::Result res = Post("/agents/a/v1/chat/completions", Chat("a", "hi", true), h);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(fake_->last_header("X-Conversation-Id"), "(absent)");
  EXPECT_EQ(fake_->last_header("X-Request-Id"), "r-1") << "other headers still pass";
  EXPECT_EQ(CountCalls("completion"), 1);
}

TEST_F(PolicyTest, NoCorsHeaderByDefaultAndForeignPagesAreRefused) {
  httplib::Client c = Client();
  httplib::Result plain = c.Get("/v1/models");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 200);
  EXPECT_FALSE(plain->has_header("Access-Control-Allow-Origin")) << "llama-server's * is dropped";
  httplib::Result page =
      Post("/agents/a/v1/chat/completions", Chat("a", "hi"), {{"Origin", "https://evil.example"}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 403);
  EXPECT_EQ(ErrorCodeOf(page), 403);
  EXPECT_FALSE(page->has_header("Access-Control-Allow-Origin"));
  EXPECT_EQ(CountCalls("completion"), 0);
  httplib::Result preflight =
      c.Options("/v1/chat/completions",
                {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(preflight);
  EXPECT_EQ(preflight->status, 403);
  EXPECT_FALSE(preflight->has_header("Access-Control-Allow-Origin"));
}

TEST_F(PolicyTest, AnAllowedOriginGetsCorsHeadersAndItsPreflightsAnAnswer) {
  Start(2, [](DaemonOptions& o) { o.proxy.browser.cors_origins = {"https://app.example"}; });
  const httplib::Headers app = {{"Origin", "https://app.example"}};
  httplib::Result res = Post("/agents/a/v1/chat/completions", Chat("a", "hi"), app);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(res->get_header_value_count("Access-Control-Allow-Origin"), 1u);
  EXPECT_EQ(CountCalls("completion"), 1);

  httplib::Client c = Client();
  httplib::Result preflight =
      c.Options("/agents/a/v1/chat/completions",
                {{"Origin", "https://app.example"},
                 {"Access-Control-Request-Method", "POST"},
                 {"Access-Control-Request-Headers", "content-type, authorization"}});
  ASSERT_TRUE(preflight);
  EXPECT_EQ(preflight->status, 204);
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Headers"),
            "content-type, authorization");
  EXPECT_NE(preflight->get_header_value("Access-Control-Allow-Methods").find("POST"),
            std::string::npos);
  EXPECT_EQ(CountCalls("completion"), 1) << "a preflight runs nothing";

  httplib::Result other = c.Get("/v1/models", {{"Origin", "https://other.example"}});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 403);
  EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
}

TEST_F(PolicyTest, AdminPostsTakeOnlyJsonBodies) {
  Turn("a");
  httplib::Client c = Client();
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded"}) {
    httplib::Result res = c.Post("/admin/agents/a/pin", "{}", type);
    ASSERT_TRUE(res) << type;
    EXPECT_EQ(res->status, 415) << type;
    EXPECT_EQ(ErrorCodeOf(res), 415) << res->body;
  }
  EXPECT_EQ(c.Post("/admin/agents/a/pin")->status, 415) << "no Content-Type at all";
  EXPECT_EQ(c.Get("/admin/agents/a")->status, 200) << "reads carry no body";
  EXPECT_FALSE(json::parse(c.Get("/admin/agents/a")->body)["pinned"].get<bool>())
      << "the refused pins did nothing";
  EXPECT_EQ(c.Post("/admin/agents/a/pin", "{}", "application/json; charset=utf-8")->status, 200);
}

TEST_F(PolicyTest, ForeignHostsAreRefusedAndLoopbackNamesAcceptedOnAnyPort) {
  httplib::Client c = Client();
  for (const char* host : {"localhost", "localhost:8090", "127.0.0.1:1", "[::1]:8090"}) {
    httplib::Result res = c.Get("/v1/models", {{"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 200) << host;
  }
  for (const char* host : {"evil.example", "evil.example:8090", "localhost.evil.example"}) {
    httplib::Result res = c.Get("/admin/agents", {{"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 403) << host;
    EXPECT_EQ(ErrorCodeOf(res), 403) << res->body;
  }
  EXPECT_EQ(c.Get("/healthz", {{"Host", "10.1.2.3:8090"}})->status, 200)
      << "probes come by any address";
  Restart([](DaemonOptions& o) { o.proxy.browser.allowed_hosts = {"agents.lan"}; });
  httplib::Client again = Client();
  EXPECT_EQ(again.Get("/v1/models", {{"Host", "agents.lan:8090"}})->status, 200);
  EXPECT_EQ(again.Get("/v1/models", {{"Host", "evil.example"}})->status, 403);
}

}  // namespace
}  // namespace agentkv

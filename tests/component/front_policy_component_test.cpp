// What the front lets through to llama-server, against the fake llama-server.
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

}  // namespace
}  // namespace agentkv

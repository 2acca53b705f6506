#include "http/identity.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace agentkv {
namespace {

using nlohmann::json;

std::string Resolved(const Result<Tenant>& t) {
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() && t.value() ? t.value()->str() : "<stateless>";
}

TEST(Identity, ThePathPrefixWinsOverEveryOtherSource) {
  json body = {{"prompt_cache_key", "k"}, {"user", "u"}};
  EXPECT_EQ(Resolved(ResolveTenant(AgentId::Parse("p").value(), "h", &body)), "p");
  EXPECT_EQ(Resolved(ResolveTenant(std::nullopt, "h", &body)), "h");
  EXPECT_EQ(Resolved(ResolveTenant(std::nullopt, std::nullopt, &body)), "k");
  body.erase("prompt_cache_key");
  EXPECT_EQ(Resolved(ResolveTenant(std::nullopt, std::nullopt, &body)), "u");
}

TEST(Identity, NoSourceMeansAStatelessRequest) {
  json body = {{"messages", json::array()}, {"user", nullptr}};
  EXPECT_EQ(Resolved(ResolveTenant(std::nullopt, std::nullopt, &body)), "<stateless>");
  EXPECT_EQ(Resolved(ResolveTenant(std::nullopt, std::nullopt, nullptr)), "<stateless>");
}

TEST(Identity, AnInvalidIdIsRejectedNamingItsSource) {
  json body = {{"user", "alice@example.com"}};
  Result<Tenant> t = ResolveTenant(std::nullopt, std::nullopt, &body);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("\"user\""), std::string::npos);

  Result<Tenant> h = ResolveTenant(std::nullopt, std::string("a/b"), nullptr);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("X-Agent-Id"), std::string::npos);

  json number = {{"prompt_cache_key", 42}};
  EXPECT_FALSE(ResolveTenant(std::nullopt, std::nullopt, &number).ok());

  Result<AgentId> path = ParsePathAgent("a b");
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(path.status().message().find("path"), std::string::npos);
}

}  // namespace
}  // namespace agentkv

#include "agentkv/agent_id.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

TEST(AgentId, AcceptsLettersDigitsDotsUnderscoresAndDashes) {
  Result<AgentId> id = AgentId::Parse("planner-2.v_1");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->str(), "planner-2.v_1");
  EXPECT_TRUE(AgentId::Parse(std::string(128, 'a')).ok());
}

TEST(AgentId, RejectsEmptyTooLongAndOtherCharacters) {
  for (const std::string& bad :
       {std::string(), std::string(129, 'a'), std::string("a/b"), std::string("a b"),
        std::string("..%2F"), std::string("alice@example.com"), std::string("ü")}) {
    Result<AgentId> id = AgentId::Parse(bad);
    EXPECT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.status().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(AgentId, LogsShowAtMostSixteenCharacters) {
  EXPECT_EQ(AgentId::Parse("planner").value().ForLog(), "planner");
  const std::string long_id = "user.alice-session-8f3a9c2b71d04e55";
  const std::string logged = AgentId::Parse(long_id).value().ForLog();
  EXPECT_EQ(logged.size(), 16u);
  EXPECT_EQ(long_id.find(logged.substr(0, 15)), 0u);
}

TEST(AgentId, AnIdInAKeysNamespaceIsAnotherAgentThatNoClientCanName) {
  const AgentId planner = AgentId::Parse("planner").value();
  const AgentId of_alice = AgentId::InNamespace(planner, "3fa9c1d2e4b5a697");
  const AgentId of_bob = AgentId::InNamespace(planner, "0011223344556677");
  EXPECT_EQ(of_alice.str(), "planner@3fa9c1d2e4b5a697");
  EXPECT_NE(of_alice, of_bob);
  EXPECT_NE(of_alice, planner);
  EXPECT_FALSE(AgentId::Parse(of_alice.str()).ok()) << "a client cannot name it";
  EXPECT_EQ(AgentId::ParseQualified(of_alice.str()).value(), of_alice);
  EXPECT_EQ(AgentId::ParseStored(of_alice.str()).value(), of_alice);
  EXPECT_EQ(AgentId::ParseQualified("planner").value(), planner);
  for (const char* bad : {"planner@", "@3fa9", "planner@UPPER", "planner@a/b", "p@q@r",
                          "planner@0123456789abcdef0"}) {
    EXPECT_FALSE(AgentId::ParseQualified(bad).ok()) << bad;
  }
  EXPECT_THROW(AgentId::InNamespace(planner, "not a scope"), std::invalid_argument);
}

TEST(AgentId, TheNamespaceIsWhatInNamespaceAdded) {
  const AgentId plain = AgentId::Parse("planner").value();
  EXPECT_EQ(plain.ns(), "");
  EXPECT_EQ(AgentId::InNamespace(plain, "0f3a").ns(), "0f3a");
  EXPECT_EQ(AgentId::Internal("p.x").ns(), "");
}

}  // namespace
}  // namespace agentkv

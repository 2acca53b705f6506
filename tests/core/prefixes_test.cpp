#include "core/prefixes.h"

#include <gtest/gtest.h>

#include <numeric>

namespace agentkv {
namespace {

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

// `shared` tokens 1..shared, then `rest` tokens unique to `seed`.
Tokens Prompt(std::size_t shared, std::size_t rest, int seed) {
  Tokens t(shared);
  std::iota(t.begin(), t.end(), 1);
  for (std::size_t i = 0; i < rest; ++i) t.push_back(100000 * seed + static_cast<int>(i));
  return t;
}

TEST(PrefixesTest, ASnapshotIsBuiltFromWhatTwoAgentsOfOneScopeBothSent) {
  Prefixes p(100);
  const PrefixChoice first = p.Choose("s", Id("a"), Prompt(300, 50, 1), {});
  EXPECT_FALSE(first.build);
  EXPECT_FALSE(first.start_from);
  const PrefixChoice second = p.Choose("s", Id("b"), Prompt(300, 50, 2), {});
  ASSERT_TRUE(second.build);
  EXPECT_EQ(second.build_tokens, 300u);
  const std::optional<SnapshotKey> key = Prefixes::Parse(*second.build);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->scope, "s");
  EXPECT_EQ(key->length, 300u);
  EXPECT_TRUE(second.build->internal());
  EXPECT_EQ(second.build_source, Id("a")) << "a's memory holds those 300 tokens";
}

TEST(PrefixesTest, TheBuildSourceIsTheAgentOfTheScopeSharingTheMost) {
  Prefixes p(100);
  p.Choose("s", Id("short"), Prompt(200, 50, 1), {});
  p.Choose("other-scope", Id("other"), Prompt(400, 50, 2), {});
  p.Choose("s", Id("long"), Prompt(400, 50, 3), {});
  p.Choose("s", Id("newer-short"), Prompt(200, 50, 4), {});
  const PrefixChoice c = p.Choose("s", Id("c"), Prompt(400, 50, 5), {});
  ASSERT_TRUE(c.build);
  EXPECT_EQ(c.build_tokens, 400u);
  EXPECT_EQ(c.build_source, Id("long"));
  const PrefixChoice d = p.Choose("other-scope", Id("d"), Prompt(400, 50, 6), {});
  EXPECT_EQ(d.build_source, Id("other")) << "never an agent of another scope";
  EXPECT_FALSE(p.Choose("s", Id("e"), Prompt(50, 50, 7), {}).build_source) << "no build, no source";
}

TEST(PrefixesTest, NothingIsSharedAcrossScopesNorWithTheSameAgentNorBelowTheMinimum) {
  Prefixes p(100);
  p.Choose("s", Id("a"), Prompt(300, 50, 1), {});
  EXPECT_FALSE(p.Choose("other", Id("b"), Prompt(300, 50, 2), {}).build);
  EXPECT_FALSE(p.Choose("s", Id("a"), Prompt(300, 50, 3), {}).build) << "the same agent again";
  Prefixes small(400);
  small.Choose("s", Id("a"), Prompt(300, 50, 1), {});
  EXPECT_FALSE(small.Choose("s", Id("b"), Prompt(300, 50, 2), {}).build);
}

TEST(PrefixesTest, AnAgentStartsFromTheLongestSnapshotOfItsScopeThatItSentWhole) {
  Prefixes p(100);
  const Tokens mine = Prompt(500, 50, 1);
  const AgentId short_one = Prefixes::SnapshotId("s", mine, 200);
  const AgentId long_one = Prefixes::SnapshotId("s", mine, 450);
  const AgentId foreign = Prefixes::SnapshotId("t", mine, 480);
  Tokens differs = mine;
  differs[470] = -1;
  const AgentId not_mine = Prefixes::SnapshotId("s", differs, 490);
  const PrefixChoice c =
      p.Choose("s", Id("a"), mine, {short_one, foreign, long_one, not_mine, Id("plain")});
  ASSERT_TRUE(c.start_from);
  EXPECT_EQ(*c.start_from, long_one);
  EXPECT_EQ(c.start_tokens, 450u);
  // Longer than the prompt: never.
  EXPECT_FALSE(p.Choose("s", Id("b"), Prompt(100, 0, 0), {long_one}).start_from);
}

TEST(PrefixesTest, ALongerSnapshotIsBuiltOnlyWhenItAddsAtLeastTheMinimum) {
  Prefixes p(100);
  const Tokens a = Prompt(300, 50, 1);
  const AgentId existing = Prefixes::SnapshotId("s", a, 250);
  p.Choose("s", Id("a"), a, {existing});
  const PrefixChoice b = p.Choose("s", Id("b"), Prompt(300, 50, 2), {existing});
  EXPECT_EQ(b.start_tokens, 250u);
  EXPECT_FALSE(b.build) << "300 shared is not 100 more than the 250 it starts from";
  p.Choose("s", Id("c"), Prompt(400, 50, 3), {existing});
  const PrefixChoice d = p.Choose("s", Id("d"), Prompt(400, 50, 4), {existing});
  ASSERT_TRUE(d.build);
  EXPECT_EQ(d.build_tokens, 400u);
}

TEST(PrefixesTest, SnapshotIdsParseBackAndOthersDoNot) {
  const AgentId id = Prefixes::SnapshotId(Prefixes::ScopeOf("key"), Prompt(10, 0, 0), 10);
  EXPECT_TRUE(Prefixes::Parse(id));
  EXPECT_FALSE(Prefixes::Parse(Id("prefix.open.10.0123456789abcdef"))) << "a client's id";
  EXPECT_FALSE(Prefixes::Parse(AgentId::Internal("prefix.open.x.0123456789abcdef")));
  EXPECT_FALSE(Prefixes::Parse(AgentId::Internal("prefix.open.10.0123")));
  EXPECT_NE(Prefixes::ScopeOf("key"), Prefixes::ScopeOf("other"));
  EXPECT_EQ(Prefixes::ScopeOf(""), "open");
  EXPECT_EQ(Prefixes::ScopeOf("key").find("key"), std::string::npos);
}

TEST(AgentIdTest, InternalIdsAreStoredButNoClientCanNameOne) {
  EXPECT_FALSE(AgentId::Parse("~prefix.x").ok());
  EXPECT_TRUE(AgentId::ParseStored("~prefix.x").ok());
  EXPECT_TRUE(AgentId::ParseStored("plain").ok());
  EXPECT_FALSE(AgentId::ParseStored("~").ok());
  EXPECT_FALSE(AgentId::ParseStored("~a/b").ok());
  EXPECT_TRUE(AgentId::Internal("prefix.x").internal());
  EXPECT_FALSE(AgentId::Parse("prefix.x")->internal());
}

}  // namespace
}  // namespace agentkv

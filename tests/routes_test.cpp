#include "agentkv/routes.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

TEST(Routes, CompletionRoutesRunOnSlots) {
  for (const char* p : {"/completion", "/v1/completions", "/v1/chat/completions",
                        "/chat/completions", "/v1/responses", "/infill"}) {
    Route r = MatchRoute("POST", p);
    EXPECT_EQ(r.kind, RouteKind::kInference) << p;
    EXPECT_EQ(r.upstream_path, p);
    EXPECT_FALSE(r.path_agent);
  }
}

TEST(Routes, TheAgentPrefixIsRemovedBeforeForwarding) {
  Route r = MatchRoute("POST", "/agents/planner/v1/chat/completions");
  EXPECT_EQ(r.kind, RouteKind::kInference);
  EXPECT_EQ(r.path_agent.value(), "planner");
  EXPECT_EQ(r.upstream_path, "/v1/chat/completions");

  Route models = MatchRoute("GET", "/agents/planner/v1/models");
  EXPECT_EQ(models.kind, RouteKind::kPassthrough);
  EXPECT_EQ(models.upstream_path, "/v1/models");
  EXPECT_EQ(MatchRoute("GET", "/agents/x").upstream_path, "/");
}

TEST(Routes, SlotActionsAreRefusedAndOtherPathsPassThrough) {
  EXPECT_EQ(MatchRoute("POST", "/slots/0").kind, RouteKind::kSlotAction);
  EXPECT_EQ(MatchRoute("POST", "/agents/a/slots/1").kind, RouteKind::kSlotAction);
  EXPECT_EQ(MatchRoute("GET", "/slots").kind, RouteKind::kPassthrough);
  EXPECT_EQ(MatchRoute("GET", "/v1/models").kind, RouteKind::kPassthrough);
  EXPECT_EQ(MatchRoute("POST", "/tokenize").kind, RouteKind::kPassthrough);
  EXPECT_EQ(MatchRoute("GET", "/v1/chat/completions").kind, RouteKind::kPassthrough);
}

TEST(Routes, SlotRoutesThatIgnoreIdSlotAreUnsupported) {
  for (const char* p :
       {"/v1/messages", "/v1/embeddings", "/embedding", "/rerank", "/v1/audio/transcriptions"}) {
    EXPECT_EQ(MatchRoute("POST", p).kind, RouteKind::kUnsupported) << p;
  }
}

}  // namespace
}  // namespace agentkv

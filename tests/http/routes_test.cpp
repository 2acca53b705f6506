#include "http/routes.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

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

TEST(Routes, AdminRoutesNameTheirActionAndAgent) {
  struct Case {
    const char* method;
    const char* path;
    AdminAction action;
    const char* agent;  // nullptr: none
  };
  for (const Case& c : {
           Case{"GET", "/admin/stats", AdminAction::kStats, nullptr},
           Case{"GET", "/admin/agents", AdminAction::kListAgents, nullptr},
           Case{"GET", "/admin/agents/", AdminAction::kListAgents, nullptr},
           Case{"GET", "/admin/agents/coder", AdminAction::kGetAgent, "coder"},
           Case{"DELETE", "/admin/agents/coder", AdminAction::kDelete, "coder"},
           Case{"POST", "/admin/agents/coder/warm", AdminAction::kWarm, "coder"},
           Case{"POST", "/admin/agents/coder/fork", AdminAction::kFork, "coder"},
           Case{"POST", "/admin/agents/coder/pin/", AdminAction::kPin, "coder"},
           Case{"DELETE", "/admin/agents/coder/pin", AdminAction::kUnpin, "coder"},
           Case{"GET", "/admin/agents//pin", AdminAction::kNone, nullptr},
           Case{"POST", "/admin/agents//pin", AdminAction::kPin, ""},
       }) {
    const Route r = MatchRoute(c.method, c.path);
    EXPECT_EQ(r.kind, RouteKind::kAdmin) << c.path;
    EXPECT_EQ(r.admin, c.action) << c.method << " " << c.path;
    EXPECT_EQ(r.path_agent.has_value(), c.agent != nullptr) << c.path;
    if (c.agent && r.path_agent) {
      EXPECT_EQ(*r.path_agent, c.agent) << c.path;
    }
  }
}

TEST(Routes, AnAdminPathWithTheWrongMethodOrShapeMatchesNoAction) {
  for (const auto& [method, path] : std::vector<std::pair<const char*, const char*>>{
           {"POST", "/admin/stats"},
           {"GET", "/admin/agents/coder/warm"},
           {"PUT", "/admin/agents/coder"},
           {"POST", "/admin/agents/coder/pin/extra"},
           {"GET", "/admin/nothing"},
       }) {
    const Route r = MatchRoute(method, path);
    EXPECT_EQ(r.kind, RouteKind::kAdmin) << path;
    EXPECT_EQ(r.admin, AdminAction::kNone) << method << " " << path;
  }
}

}  // namespace
}  // namespace agentkv

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
  EXPECT_EQ(models.kind, RouteKind::kReadOnly);
  EXPECT_EQ(models.upstream_path, "/v1/models");
  EXPECT_EQ(MatchRoute("GET", "/agents/x").upstream_path, "/");
}

TEST(Routes, SlotActionsAreRefusedUnderAnyPrefix) {
  EXPECT_EQ(MatchRoute("POST", "/slots/0").kind, RouteKind::kSlotAction);
  EXPECT_EQ(MatchRoute("POST", "/agents/a/slots/1").kind, RouteKind::kSlotAction);
}

TEST(Routes, SlotRoutesThatIgnoreIdSlotAreUnsupported) {
  for (const char* p :
       {"/v1/messages", "/v1/embeddings", "/embedding", "/rerank", "/v1/audio/transcriptions"}) {
    EXPECT_EQ(MatchRoute("POST", p).kind, RouteKind::kUnsupported) << p;
  }
}

// Every route llama-server registers at the pinned commit, written out
// here on its own so that a change to the table in routes.cpp shows.
TEST(Routes, EveryLlamaServerRouteHasItsClass) {
  struct Case {
    const char* method;
    const char* path;
    RouteKind kind;
  };
  const RouteKind inference = RouteKind::kInference, unsupported = RouteKind::kUnsupported,
                  read_only = RouteKind::kReadOnly, global = RouteKind::kGlobal;
  for (const Case& c : {
           Case{"POST", "/completion", inference},
           Case{"POST", "/completions", inference},
           Case{"POST", "/v1/completions", inference},
           Case{"POST", "/chat/completions", inference},
           Case{"POST", "/v1/chat/completions", inference},
           Case{"POST", "/responses", inference},
           Case{"POST", "/v1/responses", inference},
           Case{"POST", "/infill", inference},
           Case{"POST", "/v1/messages", unsupported},
           Case{"POST", "/embedding", unsupported},
           Case{"POST", "/embeddings", unsupported},
           Case{"POST", "/v1/embeddings", unsupported},
           Case{"POST", "/rerank", unsupported},
           Case{"POST", "/reranking", unsupported},
           Case{"POST", "/v1/rerank", unsupported},
           Case{"POST", "/v1/reranking", unsupported},
           Case{"POST", "/audio/transcriptions", unsupported},
           Case{"POST", "/v1/audio/transcriptions", unsupported},
           Case{"GET", "/health", read_only},
           Case{"GET", "/v1/health", read_only},
           Case{"HEAD", "/health", read_only},
           Case{"GET", "/props", read_only},
           Case{"GET", "/models", read_only},
           Case{"GET", "/v1/models", read_only},
           Case{"GET", "/lora-adapters", read_only},
           Case{"POST", "/tokenize", read_only},
           Case{"POST", "/detokenize", read_only},
           Case{"POST", "/apply-template", read_only},
           Case{"POST", "/chat/completions/input_tokens", read_only},
           Case{"POST", "/v1/chat/completions/input_tokens", read_only},
           Case{"POST", "/responses/input_tokens", read_only},
           Case{"POST", "/v1/responses/input_tokens", read_only},
           Case{"POST", "/v1/messages/count_tokens", read_only},
           Case{"POST", "/props", global},
           Case{"POST", "/lora-adapters", global},
           Case{"GET", "/slots", global},
           Case{"POST", "/v1/chat/completions/control", global},
           Case{"GET", "/v1/stream", global},
           Case{"DELETE", "/v1/stream", global},
           Case{"POST", "/v1/streams/lookup", global},
           Case{"GET", "/tools", global},
           Case{"POST", "/tools", global},
           Case{"GET", "/cors-proxy", global},
           Case{"POST", "/cors-proxy", global},
           Case{"POST", "/models", global},
           Case{"DELETE", "/models", global},
           Case{"POST", "/models/load", global},
           Case{"POST", "/models/unload", global},
           Case{"GET", "/models/sse", global},
       }) {
    EXPECT_EQ(MatchRoute(c.method, c.path).kind, c.kind) << c.method << " " << c.path;
    const Route prefixed = MatchRoute(c.method, std::string("/agents/a") + c.path);
    EXPECT_EQ(prefixed.kind, c.kind) << "under a prefix: " << c.method << " " << c.path;
    EXPECT_EQ(prefixed.upstream_path, c.path);
  }
}

TEST(Routes, LlamaServersMetricsAreReadOnlyOnlyUnderAnAgentPrefix) {
  EXPECT_EQ(MatchRoute("GET", "/metrics").kind, RouteKind::kMetrics);
  EXPECT_EQ(MatchRoute("GET", "/agents/a/metrics").kind, RouteKind::kReadOnly);
}

TEST(Routes, TheStatusPageIsAgentkvsOwnAndTakesNoPrefix) {
  for (const char* p : {"/ui", "/ui/", "/ui/app.js", "/ui/app.css", "/ui/nothing"}) {
    EXPECT_EQ(MatchRoute("GET", p).kind, RouteKind::kStatusPage) << p;
    EXPECT_EQ(MatchRoute("HEAD", p).kind, RouteKind::kStatusPage) << p;
  }
  EXPECT_EQ(RouteLabel(MatchRoute("GET", "/ui/app.js")), "ui");
  EXPECT_EQ(MatchRoute("POST", "/ui").kind, RouteKind::kUnknown);
  EXPECT_EQ(MatchRoute("GET", "/uix").kind, RouteKind::kUnknown);
  EXPECT_EQ(MatchRoute("GET", "/agents/a/ui").kind, RouteKind::kUnknown);
}

TEST(Routes, PathsAndMethodsLlamaServerDoesNotRouteAreUnknown) {
  for (const auto& [method, path] : std::vector<std::pair<const char*, const char*>>{
           {"GET", "/"},                     // the web UI
           {"GET", "/index.html"},           // the web UI
           {"GET", "/agents/x"},             // the web UI, prefixed
           {"POST", "/predict"},             // Vertex AI: dispatches to any route
           {"GET", "/v1/chat/completions"},  // wrong method
           {"PUT", "/props"},
           {"POST", "/slots"},
           {"GET", "/v1/models/"},
           {"GET", "/agents/a/admin/stats"},  // agentkv's own routes take no prefix
           {"GET", "/agents/a/healthz"},
           {"POST", "/future-route"},
       }) {
    EXPECT_EQ(MatchRoute(method, path).kind, RouteKind::kUnknown) << method << " " << path;
  }
}

TEST(Routes, OptionsIsAPreflightAgentkvAnswersOnAnyPath) {
  for (const char* p :
       {"/v1/chat/completions", "/admin/agents/a/pin", "/agents/a/lora-adapters", "/nowhere"}) {
    EXPECT_EQ(MatchRoute("OPTIONS", p).kind, RouteKind::kPreflight) << p;
  }
}

TEST(Routes, EachClassHasItsOwnMetricsLabel) {
  EXPECT_EQ(RouteLabel(MatchRoute("GET", "/v1/models")), "read_only");
  EXPECT_EQ(RouteLabel(MatchRoute("GET", "/slots")), "global");
  EXPECT_EQ(RouteLabel(MatchRoute("GET", "/")), "unknown");
  EXPECT_EQ(RouteLabel(MatchRoute("OPTIONS", "/")), "preflight");
  EXPECT_EQ(RouteLabel(MatchRoute("POST", "/agents/x/v1/chat/completions")),
            "/v1/chat/completions");
}

TEST(Routes, HeadersThatChangeWhatLlamaServerDoesAreNotForwarded) {
  for (const char* h : {"X-Conversation-Id", "x-conversation-id", "X-CONVERSATION-ID", "Origin",
                        "X-Agent-Id", "x-agentkv-parent", "x-agent-next"}) {
    EXPECT_FALSE(ForwardsRequestHeader(h)) << h;
  }
  for (const char* h : {"Accept", "User-Agent", "X-Request-Id", "X-Conversation"}) {
    EXPECT_TRUE(ForwardsRequestHeader(h)) << h;
  }
  EXPECT_FALSE(ForwardsResponseHeader("Access-Control-Allow-Origin"));
  EXPECT_FALSE(ForwardsResponseHeader("access-control-allow-headers"));
  EXPECT_TRUE(ForwardsResponseHeader("Content-Type"));
  EXPECT_TRUE(ForwardsResponseHeader("Access"));
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
           Case{"GET", "/admin/status", AdminAction::kStatus, nullptr},
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

// Found by fuzz/front_fuzz (its seed admin-head): HEAD matched llama-server's
// GET routes but no admin route, so HEAD /admin/stats was a 404.
TEST(Routes, HeadMatchesAdminRoutesAsGetAsItDoesEveryOther) {
  for (const char* path : {"/admin/stats", "/admin/agents", "/admin/agents/coder@0f3a",
                           "/admin/prefixes", "/admin/agents/coder/warm", "/healthz", "/props"}) {
    const Route head = MatchRoute("HEAD", path);
    const Route get = MatchRoute("GET", path);
    EXPECT_EQ(head.kind, get.kind) << path;
    EXPECT_EQ(head.admin, get.admin) << path;
    EXPECT_EQ(head.path_agent, get.path_agent) << path;
  }
  EXPECT_EQ(MatchRoute("HEAD", "/admin/stats").admin, AdminAction::kStats);
  EXPECT_EQ(MatchRoute("HEAD", "/admin/agents/coder").admin, AdminAction::kGetAgent);
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

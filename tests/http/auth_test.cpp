#include "http/auth.h"

#include <gtest/gtest.h>

#include "core/prefixes.h"

namespace agentkv {
namespace {

AuthPolicy Keys() {
  AuthPolicy p;
  p.api_keys = {"k1", "k2"};
  p.admin_key = "adm";
  return p;
}

TEST(Auth, KeysOfOneTenantShareAScopeAndAKeyAloneHasItsOwn) {
  AuthPolicy p;
  p.api_keys = {"alone", "ci", "laptop", "new"};
  p.tenants = {"", "team-a", "team-a", "@" + Prefixes::ScopeOf("old")};
  EXPECT_EQ(ScopeOfRequest(p, "Bearer alone"), Prefixes::ScopeOf("alone"));
  EXPECT_EQ(ScopeOfRequest(p, "Bearer ci"), ScopeOfRequest(p, "Bearer laptop"));
  EXPECT_NE(ScopeOfRequest(p, "Bearer ci"), Prefixes::ScopeOf("ci"));
  EXPECT_EQ(ScopeOfRequest(p, "Bearer new"), Prefixes::ScopeOf("old"))
      << "a key that replaces another keeps its agents";
  EXPECT_EQ(ScopeOfRequest(AuthPolicy{}, ""), Prefixes::ScopeOf(""));
}

TEST(Auth, WithoutKeysEverythingIsOpen) {
  for (RouteKind k :
       {RouteKind::kInference, RouteKind::kReadOnly, RouteKind::kAdmin, RouteKind::kMetrics}) {
    EXPECT_TRUE(Authorize(AuthPolicy{}, k, "").ok());
  }
}

TEST(Auth, EveryConfiguredKeyWorksAndNothingElse) {
  EXPECT_TRUE(Authorize(Keys(), RouteKind::kInference, "Bearer k1").ok());
  EXPECT_TRUE(Authorize(Keys(), RouteKind::kInference, "Bearer k2").ok());
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearer k", "Bearer k12", "k1", "Basic k1"}) {
    EXPECT_EQ(Authorize(Keys(), RouteKind::kReadOnly, bad).code(), ErrorCode::kUnauthorized) << bad;
  }
}

TEST(Auth, TheAdminApiTakesOnlyTheAdminKeyAndIsOffWithoutOne) {
  EXPECT_TRUE(Authorize(Keys(), RouteKind::kAdmin, "Bearer adm").ok());
  EXPECT_EQ(Authorize(Keys(), RouteKind::kAdmin, "Bearer k1").code(), ErrorCode::kUnauthorized);
  AuthPolicy no_admin = Keys();
  no_admin.admin_key.clear();
  EXPECT_EQ(Authorize(no_admin, RouteKind::kAdmin, "Bearer k1").code(), ErrorCode::kForbidden);
}

TEST(Auth, TheStatusPageIsServedWithoutAKeyWhereverTheAdminApiIsOn) {
  EXPECT_TRUE(Authorize(AuthPolicy{}, RouteKind::kStatusPage, "").ok());
  EXPECT_TRUE(Authorize(Keys(), RouteKind::kStatusPage, "").ok()) << "it holds no data";
  AuthPolicy no_admin = Keys();
  no_admin.admin_key.clear();
  EXPECT_EQ(Authorize(no_admin, RouteKind::kStatusPage, "Bearer k1").code(), ErrorCode::kForbidden);
}

TEST(Auth, HealthAndMetricsArePublicUnlessConfigured) {
  AuthPolicy p = Keys();
  EXPECT_TRUE(Authorize(p, RouteKind::kLiveness, "").ok());
  EXPECT_TRUE(Authorize(p, RouteKind::kMetrics, "").ok());
  p.health_needs_key = p.metrics_need_key = true;
  EXPECT_FALSE(Authorize(p, RouteKind::kReadiness, "").ok());
  EXPECT_FALSE(Authorize(p, RouteKind::kMetrics, "").ok());
  EXPECT_TRUE(Authorize(p, RouteKind::kMetrics, "Bearer k2").ok());
}

TEST(Auth, GlobalRoutesTakeOnlyTheAdminKeyAndAreRefusedWithoutOne) {
  EXPECT_TRUE(Authorize(Keys(), RouteKind::kGlobal, "Bearer adm").ok());
  for (const char* bad : {"", "Bearer k1", "Bearer ad"}) {
    EXPECT_EQ(Authorize(Keys(), RouteKind::kGlobal, bad).code(), ErrorCode::kUnauthorized) << bad;
  }
  AuthPolicy only_admin;
  only_admin.admin_key = "adm";
  EXPECT_TRUE(Authorize(only_admin, RouteKind::kGlobal, "Bearer adm").ok());
  EXPECT_EQ(Authorize(only_admin, RouteKind::kGlobal, "").code(), ErrorCode::kUnauthorized);
  AuthPolicy no_admin = Keys();
  no_admin.admin_key.clear();
  EXPECT_EQ(Authorize(no_admin, RouteKind::kGlobal, "Bearer k1").code(), ErrorCode::kForbidden);
  EXPECT_EQ(Authorize(AuthPolicy{}, RouteKind::kGlobal, "").code(), ErrorCode::kForbidden)
      << "no keys at all is no reason to open them";
}

TEST(Auth, APreflightNeedsNoKey) { EXPECT_TRUE(Authorize(Keys(), RouteKind::kPreflight, "").ok()); }

}  // namespace
}  // namespace agentkv

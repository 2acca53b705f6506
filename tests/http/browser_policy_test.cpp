#include "http/browser_policy.h"

#include <gtest/gtest.h>

namespace agentkv {
namespace {

TEST(BrowserPolicy, LoopbackNamesAreAcceptedWithAnyPortByDefault) {
  const BrowserPolicy policy;
  for (const char* host : {"localhost", "localhost:8090", "LocalHost:1", "127.0.0.1",
                           "127.0.0.1:8090", "[::1]", "[::1]:8090", "localhost.:8090"}) {
    EXPECT_TRUE(CheckHost(policy, host).ok()) << host;
  }
}

TEST(BrowserPolicy, OtherHostsAreForbiddenAndMalformedOnesToo) {
  const BrowserPolicy policy;
  for (const char* host :
       {"", "evil.example", "evil.example:8090", "localhost.evil.example", "127.0.0.2",
        "[::2]:8090", "::1", "localhost:", "localhost:80x", "[::1", "127.0.0.1:8090:1"}) {
    const Status s = CheckHost(policy, host);
    EXPECT_EQ(s.code(), ErrorCode::kForbidden) << host;
  }
  EXPECT_NE(CheckHost(policy, "evil.example").message().find("--allowed-hosts"), std::string::npos);
}

TEST(BrowserPolicy, ListedHostsAreAddedAndAStarAcceptsAny) {
  BrowserPolicy policy;
  policy.allowed_hosts = {"agents.lan", "[fd00::5]"};
  EXPECT_TRUE(CheckHost(policy, "Agents.LAN:8090").ok());
  EXPECT_TRUE(CheckHost(policy, "[FD00::5]:8090").ok());
  EXPECT_TRUE(CheckHost(policy, "localhost:8090").ok()) << "loopback names always";
  EXPECT_FALSE(CheckHost(policy, "other.lan").ok());
  policy.allowed_hosts = {"*"};
  EXPECT_TRUE(CheckHost(policy, "anything.example:1").ok());
}

TEST(BrowserPolicy, HostEntriesAreNormalizedAndPortsRefused) {
  EXPECT_EQ(NormalizeHostName("Agents.LAN").value(), "agents.lan");
  EXPECT_EQ(NormalizeHostName("agents.lan.").value(), "agents.lan");
  EXPECT_EQ(NormalizeHostName("fd00::5").value(), "[fd00::5]");
  EXPECT_EQ(NormalizeHostName("[FD00::5]").value(), "[fd00::5]");
  EXPECT_EQ(NormalizeHostName("*").value(), "*");
  for (const char* bad : {"", "agents.lan:8090", "[fd00::5]:8090", "."}) {
    EXPECT_EQ(NormalizeHostName(bad).status().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(BrowserPolicy, ASpecificListenAddressIsANameAgentkvIsReachedBy) {
  EXPECT_EQ(ListenHostNames("10.0.0.5"), std::vector<std::string>{"10.0.0.5"});
  EXPECT_EQ(ListenHostNames("fd00::5"), std::vector<std::string>{"[fd00::5]"});
  EXPECT_EQ(ListenHostNames("My-Host.lan"), std::vector<std::string>{"my-host.lan"});
  for (const char* wildcard : {"0.0.0.0", "::", "[::]", ""}) {
    EXPECT_TRUE(ListenHostNames(wildcard).empty()) << wildcard;
  }
}

TEST(BrowserPolicy, NoOriginIsAllowedByDefaultAndNoneNeedsNone) {
  const BrowserPolicy policy;
  EXPECT_TRUE(CheckOrigin(policy, "").ok()) << "API clients send no Origin";
  EXPECT_FALSE(AllowsOrigin(policy, ""));
  for (const char* origin : {"https://evil.example", "http://localhost:3000", "null"}) {
    EXPECT_FALSE(AllowsOrigin(policy, origin)) << origin;
    EXPECT_EQ(CheckOrigin(policy, origin).code(), ErrorCode::kForbidden) << origin;
  }
}

TEST(BrowserPolicy, ListedOriginsMatchExactlyAndAStarMatchesAny) {
  BrowserPolicy policy;
  policy.cors_origins = {"https://app.example", "http://localhost:3000/"};
  EXPECT_TRUE(AllowsOrigin(policy, "https://app.example"));
  EXPECT_TRUE(AllowsOrigin(policy, "HTTPS://APP.EXAMPLE"));
  EXPECT_TRUE(AllowsOrigin(policy, "http://localhost:3000"));
  EXPECT_TRUE(CheckOrigin(policy, "http://localhost:3000").ok());
  for (const char* origin : {"http://app.example", "https://app.example:444",
                             "https://app.example.evil", "http://localhost:3001"}) {
    EXPECT_FALSE(AllowsOrigin(policy, origin)) << origin;
  }
  policy.cors_origins = {"*"};
  EXPECT_TRUE(AllowsOrigin(policy, "https://any.example"));
  EXPECT_FALSE(AllowsOrigin(policy, "")) << "no Origin, no CORS headers";
}

TEST(BrowserPolicy, AgentkvsOwnOriginIsTheOneItsPageWasServedFrom) {
  BrowserPolicy policy;
  policy.allowed_hosts = {"agents.lan"};
  EXPECT_TRUE(IsOwnOrigin(policy, "http://127.0.0.1:8090", "127.0.0.1:8090"));
  EXPECT_TRUE(IsOwnOrigin(policy, "http://LOCALHOST:8090", "localhost:8090"));
  EXPECT_TRUE(IsOwnOrigin(policy, "http://localhost", "localhost"));
  EXPECT_TRUE(IsOwnOrigin(policy, "http://agents.lan:8090", "agents.lan:8090"));
  EXPECT_TRUE(IsOwnOrigin(policy, "http://[::1]:8090", "[::1]:8090"));
  EXPECT_FALSE(IsOwnOrigin(policy, "http://127.0.0.1:8091", "127.0.0.1:8090")) << "another port";
  EXPECT_FALSE(IsOwnOrigin(policy, "https://127.0.0.1:8090", "127.0.0.1:8090"));
  EXPECT_FALSE(IsOwnOrigin(policy, "http://evil.example:8090", "127.0.0.1:8090"));
  EXPECT_FALSE(IsOwnOrigin(policy, "http://evil.example:8090", "evil.example:8090"));
  EXPECT_FALSE(IsOwnOrigin(policy, "null", "127.0.0.1:8090"));
  EXPECT_FALSE(IsOwnOrigin(policy, "", "127.0.0.1:8090"));
  EXPECT_FALSE(IsOwnOrigin(policy, "http://", ""));
  policy.allowed_hosts = {"*"};
  EXPECT_FALSE(IsOwnOrigin(policy, "http://rebound.example:8090", "rebound.example:8090"))
      << "with any Host accepted, a rebound name's site would pass as agentkv";
  EXPECT_TRUE(IsOwnOrigin(policy, "http://127.0.0.1:8090", "127.0.0.1:8090"));
}

TEST(BrowserPolicy, OnlyJsonBodiesAreTakenWhereJsonIsRequired) {
  for (const char* type : {"application/json", "application/json; charset=utf-8",
                           "Application/JSON", " application/json ;charset=utf-8"}) {
    EXPECT_TRUE(RequireJson(type).ok()) << type;
  }
  for (const char* type :
       {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/jsonx", "text/plain; application/json"}) {
    EXPECT_EQ(RequireJson(type).code(), ErrorCode::kUnsupportedMedia) << type;
  }
}

TEST(BrowserPolicy, PreflightAnswersSayWhatAPageMaySend) {
  auto find = [](const std::vector<std::pair<std::string, std::string>>& h, const char* name) {
    for (const auto& [k, v] : h) {
      if (k == name) return v;
    }
    return std::string("(absent)");
  };
  const auto pre = CorsHeaders("https://app.example", true, "content-type, x-agent-id");
  EXPECT_EQ(find(pre, "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(find(pre, "Access-Control-Allow-Headers"), "content-type, x-agent-id");
  EXPECT_NE(find(pre, "Access-Control-Allow-Methods").find("POST"), std::string::npos);
  EXPECT_EQ(find(pre, "Vary"), "Origin");
  const auto answer = CorsHeaders("https://app.example", false, "");
  EXPECT_EQ(find(answer, "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(find(answer, "Access-Control-Allow-Methods"), "(absent)");
  EXPECT_NE(find(answer, "Access-Control-Expose-Headers").find("X-Agentkv-Placement"),
            std::string::npos);
}

}  // namespace
}  // namespace agentkv

// The passthrough policy against the source of the pinned llama-server:
// every route it registers has a class in http/routes.cpp, so none is
// refused as unknown by oversight. Needs the source tree scripts/setup.sh
// fetches ($AGENTKV_LLAMA_SOURCE overrides where it is looked for).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "http/routes.h"
#include "real_llama.h"

namespace agentkv {
namespace {

TEST(LlamaRoutes, EveryRouteThePinnedLlamaServerRegistersHasAClass) {
  const std::filesystem::path source =
      testing::EnvOr("AGENTKV_LLAMA_SOURCE", DefaultCacheDir() / "llama.cpp" / "src-v0.5.0") /
      "tools" / "server" / "server.cpp";
  std::ifstream in(source);
  ASSERT_TRUE(in) << "cannot read " << source << ": run scripts/setup.sh";
  std::stringstream text;
  text << in.rdbuf();
  const std::string code = text.str();
  // ctx_http.get ("/health", ...), ctx_http.post("/slots/:id_slot", ...)
  const std::regex registration(R"re(ctx_http\.(get|post|del)\s*\(\s*"([^"]+)")re");
  int routes = 0;
  for (auto it = std::sregex_iterator(code.begin(), code.end(), registration);
       it != std::sregex_iterator(); ++it) {
    const std::string verb = (*it)[1];
    const std::string method = verb == "get" ? "GET" : verb == "post" ? "POST" : "DELETE";
    const std::string path = std::regex_replace((*it)[2].str(), std::regex(":[a-z_]+"), "0");
    // Under an agent prefix: /metrics without one is agentkv's own.
    const Route route = MatchRoute(method, "/agents/a" + path);
    EXPECT_NE(route.kind, RouteKind::kUnknown) << method << " " << path << " has no class";
    ++routes;
  }
  EXPECT_GE(routes, 50) << "the registrations were not found: has server.cpp changed shape?";
}

}  // namespace
}  // namespace agentkv

// GET /ui, the status page, and the browser rules around it, against the
// fake llama-server. What the page does in a browser is tests/browser/.
#include <gtest/gtest.h>
#include <httplib.h>

#include "component/fake_daemon_fixture.h"

namespace agentkv {
namespace {

using StatusPageTest = testing::FakeDaemonTest;

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(StatusPageTest, ServesThePageItsScriptAndStyleUnderAStrictPolicyAndNoData) {
  Turn("secret-agent");
  httplib::Client c = Client();
  httplib::Result page = c.Get("/ui");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  const std::string csp = page->get_header_value("Content-Security-Policy");
  EXPECT_TRUE(Has(csp, "default-src 'none'")) << csp;
  EXPECT_TRUE(Has(csp, "script-src 'self';")) << "no inline script: " << csp;
  EXPECT_TRUE(Has(csp, "connect-src 'self'")) << csp;
  EXPECT_TRUE(Has(csp, "frame-ancestors 'none'")) << csp;
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(page->get_header_value("Cache-Control"), "no-store");
  EXPECT_FALSE(Has(page->body, "secret-agent")) << "the page holds no data";
  EXPECT_TRUE(Has(page->body, "data-auth=\"open\""));
  EXPECT_FALSE(Has(page->body, "<script>")) << "every script is a file";
  EXPECT_EQ(c.Get("/ui/")->status, 200);

  for (const char* script : {"/ui/app.js", "/ui/chart.js"}) {
    httplib::Result js = c.Get(script);
    ASSERT_TRUE(js) << script;
    EXPECT_EQ(js->status, 200) << script;
    EXPECT_TRUE(Has(page->body, std::string("<script src=\"") + script + "\"")) << script;
    EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
    EXPECT_EQ(js->get_header_value("Content-Security-Policy"), csp);
    for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                             "eval(", "new Function"}) {
      EXPECT_FALSE(Has(js->body, sink)) << script << ": data is written as text only: " << sink;
    }
  }
  EXPECT_EQ(c.Get("/ui/app.css")->get_header_value("Content-Type"), "text/css; charset=utf-8");
  EXPECT_EQ(c.Get("/ui/missing.js")->status, 404);
  EXPECT_EQ(c.Post("/ui", "{}", "application/json")->status, 404);
  EXPECT_EQ(c.Get("/agents/a/ui")->status, 404);
  EXPECT_EQ(c.Get("/ui", {{"Host", "evil.example:8090"}})->status, 403) << "the Host rule holds";
}

TEST_F(StatusPageTest, WithKeysThePageAsksForTheAdminKeyThatItsDataNeeds) {
  Start(2, [](DaemonOptions& o) {
    o.proxy.auth.api_keys = {"agent-key"};
    o.proxy.auth.admin_key = "admin-key";
  });
  httplib::Client c = Client();
  httplib::Result page = c.Get("/ui");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200) << "a browser cannot send a key to open a page";
  EXPECT_TRUE(Has(page->body, "data-auth=\"key\""));
  EXPECT_EQ(c.Get("/admin/status")->status, 401);
  EXPECT_EQ(c.Post("/admin/agents/a/pin", "", "application/json")->status, 401);

  Start(2, [](DaemonOptions& o) { o.proxy.auth.api_keys = {"agent-key"}; });
  EXPECT_EQ(Client().Get("/ui")->status, 403) << "the admin API is off, so is its page";
}

TEST_F(StatusPageTest, AdminCallsFromAgentkvsOwnOriginPassAndOthersDoNot) {
  Turn("a");
  const std::string own = "http://127.0.0.1:" + std::to_string(daemon_->port());
  httplib::Client c = Client();
  httplib::Result pin = c.Post("/admin/agents/a/pin", {{"Origin", own}}, "", "application/json");
  ASSERT_TRUE(pin);
  EXPECT_EQ(pin->status, 200) << pin->body;
  EXPECT_FALSE(pin->has_header("Access-Control-Allow-Origin")) << "same origin: no CORS";
  EXPECT_EQ(c.Delete("/admin/agents/a/pin", {{"Origin", own}})->status, 200);
  EXPECT_EQ(c.Post("/admin/agents/a/pin", {{"Origin", own}}, "", "text/plain")->status, 415)
      << "a POST must still be JSON";
  EXPECT_EQ(
      c.Post("/admin/agents/a/pin", {{"Origin", "http://evil.example"}}, "", "application/json")
          ->status,
      403);
  EXPECT_EQ(c.Post("/admin/agents/a/pin", {{"Origin", own + "1"}}, "", "application/json")->status,
            403)
      << "another port is another origin";
  EXPECT_EQ(c.Post("/agents/a/v1/chat/completions", {{"Origin", own}},
                   testing::Chat("a", "x").dump(), "application/json")
                ->status,
            403)
      << "only the admin API takes the page's origin";
}

}  // namespace
}  // namespace agentkv

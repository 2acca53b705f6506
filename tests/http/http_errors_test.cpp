#include "http/http_errors.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace agentkv {
namespace {

using nlohmann::json;

TEST(HttpErrors, ErrorsHaveTheOpenAiShape) {
  const json j = json::parse(ErrorJson(Status::Error(ErrorCode::kNotFound, "no such agent")));
  EXPECT_EQ(j["error"]["code"], 404);
  EXPECT_EQ(j["error"]["message"], "no such agent");
  EXPECT_TRUE(j["error"]["type"].is_string());
}

// Found by fuzz/front_fuzz: a message quoting a client's bytes that are not
// UTF-8 (an Origin, a path, a Content-Encoding) made ErrorJson throw.
TEST(HttpErrors, AMessageThatIsNotUtf8StillMakesAnError) {
  std::string text;
  ASSERT_NO_THROW(text = ErrorJson(403, "origin 'https://app.exampl\x9b' \xc3\x28 refused"));
  const json j = json::parse(text);
  EXPECT_EQ(j["error"]["code"], 403);
  EXPECT_EQ(j["error"]["message"], "origin 'https://app.exampl\xef\xbf\xbd' \xef\xbf\xbd( refused");
}

}  // namespace
}  // namespace agentkv

#include "http/request_limits.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <string>

namespace agentkv {
namespace {

TEST(JsonNesting, IsRefusedPastTheLimitWithAMessageThatSaysSo) {
  const std::string deep = std::string(129, '[') + std::string(129, ']');
  Status s = CheckJsonNesting(deep, 128);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("nesting deeper than 128"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckJsonNesting(std::string(128, '[') + std::string(128, ']'), 128).ok());
  EXPECT_FALSE(CheckJsonNesting(R"({"a":{"b":[{"c":[]}]}})", 4).ok());
  EXPECT_TRUE(CheckJsonNesting(R"({"a":{"b":[{"c":[]}]}})", 5).ok());
}

TEST(JsonNesting, IgnoresBracketsInsideStringsAndEscapedQuotes) {
  EXPECT_TRUE(CheckJsonNesting(R"({"text":"[[[[[[{{{{"})", 1).ok());
  EXPECT_TRUE(CheckJsonNesting(R"({"text":"a \" [[[[ \\"})", 1).ok());
  EXPECT_FALSE(CheckJsonNesting(R"({"text":"a \\", "x":[[]]})", 2).ok())
      << "the string ended at the escaped backslash";
}

TEST(RequestHead, AHeaderReadAsOneValueIsRefusedTwiceInAnyCase) {
  for (const char* name : {"X-Agent-Id", "Authorization", "Host", "Content-Length"}) {
    httplib::Request req;
    req.method = "GET";
    req.headers.emplace(name, "0");
    EXPECT_TRUE(CheckHead(req, RequestLimits{}).ok()) << name;
    req.headers.emplace(std::string(name) == "Host" ? "host" : name, "0");
    const Status s = CheckHead(req, RequestLimits{});
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
  }
  httplib::Request req;
  req.method = "GET";
  req.headers.emplace("Accept", "a");
  req.headers.emplace("Accept", "b");
  EXPECT_TRUE(CheckHead(req, RequestLimits{}).ok()) << "a list-valued header may repeat";
}

TEST(RequestHead, AControlCharacterInAHeaderValueIsRefused) {
  for (const std::string& value :
       {std::string("a\0b", 3), std::string("a\rb"), std::string("a\x01"), std::string("a\x7f")}) {
    httplib::Request req;
    req.method = "GET";
    req.headers.emplace("X-Agent-Id", value);
    const Status s = CheckHead(req, RequestLimits{});
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "header X-Agent-Id holds a control character");
  }
  httplib::Request req;
  req.method = "GET";
  req.headers.emplace("User-Agent", "a\tb \xc3\xa9");
  EXPECT_TRUE(CheckHead(req, RequestLimits{}).ok()) << "a tab and UTF-8 are allowed";
}

TEST(RequestHead, AContentLengthIsDigitsOnly) {
  for (const char* length : {"+59", " 59", "59 ", "0x10", "-1", "5e3"}) {
    httplib::Request req;
    req.method = "POST";
    req.headers.emplace("Content-Length", length);
    const Status s = CheckHead(req, RequestLimits{});
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << "'" << length << "'";
    EXPECT_EQ(s.message(), "Content-Length is not a number");
  }
  httplib::Request req;
  req.method = "POST";
  req.headers.emplace("Content-Length", "59");
  EXPECT_TRUE(CheckHead(req, RequestLimits{}).ok());
}

}  // namespace
}  // namespace agentkv

#include "http/request_limits.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <string>

namespace agentkv {
namespace {

RequestLimits Depth(int depth) {
  RequestLimits limits;
  limits.max_json_depth = depth;
  return limits;
}

TEST(JsonShape, NestingIsRefusedPastTheLimitWithAMessageThatSaysSo) {
  const std::string deep = std::string(129, '[') + std::string(129, ']');
  Status s = CheckJsonShape(deep, Depth(128));
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("nesting deeper than 128"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckJsonShape(std::string(128, '[') + std::string(128, ']'), Depth(128)).ok());
  EXPECT_FALSE(CheckJsonShape(R"({"a":{"b":[{"c":[]}]}})", Depth(4)).ok());
  EXPECT_TRUE(CheckJsonShape(R"({"a":{"b":[{"c":[]}]}})", Depth(5)).ok());
}

TEST(JsonShape, BracketsInsideStringsAndEscapedQuotesAreNotNesting) {
  EXPECT_TRUE(CheckJsonShape(R"({"text":"[[[[[[{{{{"})", Depth(1)).ok());
  EXPECT_TRUE(CheckJsonShape(R"({"text":"a \" [[[[ \\"})", Depth(1)).ok());
  EXPECT_FALSE(CheckJsonShape(R"({"text":"a \\", "x":[[]]})", Depth(2)).ok())
      << "the string ended at the escaped backslash";
}

TEST(JsonShape, ValuesAreCountedKeysIncludedAndRefusedPastTheLimitAs413) {
  RequestLimits limits;
  // The object, its two keys, the array, its two numbers and {}: seven.
  limits.max_json_values = 7;
  EXPECT_TRUE(CheckJsonShape(R"({"a":[1,2],"b":{}})", limits).ok());
  limits.max_json_values = 6;
  const Status s = CheckJsonShape(R"({"a":[1,2],"b":{}})", limits);
  EXPECT_EQ(s.code(), ErrorCode::kTooLarge);
  EXPECT_NE(s.message().find("more than 6 JSON values"), std::string::npos) << s.message();
}

TEST(JsonShape, AFlatArrayOfAMillionNumbersIsRefusedAtTheDefaultBound) {
  std::string flat = "[0";
  for (int i = 1; i < 1000000; ++i) flat += ",0";
  flat += "]";
  EXPECT_EQ(CheckJsonShape(flat, RequestLimits{}).code(), ErrorCode::kTooLarge);
  EXPECT_TRUE(CheckJsonShape(flat.substr(0, 2 * 200000) + "]", RequestLimits{}).ok());
}

TEST(JsonShape, WhatIsNotJsonIsRefusedWithWhereItStops) {
  for (const char* text : {"{", "[1,]", "{\"a\" 1}", "hello", "[1] [2]", "\"\xff\""}) {
    const Status s = CheckJsonShape(text, RequestLimits{});
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find("not valid JSON"), std::string::npos) << s.message();
  }
}

TEST(RequestHead, AHeaderReadAsOneValueIsRefusedTwiceInAnyCase) {
  for (const char* name :
       {"X-Agent-Id", "Authorization", "Host", "Content-Length", "X-Agent-Next"}) {
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

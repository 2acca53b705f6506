#include "http/response_pipe.h"

#include <gtest/gtest.h>

#include <string>

namespace agentkv {
namespace {

TEST(ResponsePipe, CarriesTheChunksInOrderAndThenTheEnd) {
  ResponsePipe pipe(16);
  ASSERT_TRUE(pipe.PutHeaders(200, {{"Content-Type", "application/json"}}));
  ASSERT_TRUE(pipe.PutBody("abc", 3));
  ASSERT_TRUE(pipe.PutBody("de", 2));
  pipe.Finish(Status::Ok());
  int status = 0;
  HeaderList headers;
  ASSERT_TRUE(pipe.WaitHeaders(&status, &headers));
  EXPECT_EQ(status, 200);
  std::string chunk, body;
  while (pipe.NextChunk(&chunk)) body += chunk;
  EXPECT_EQ(body, "abcde");
  EXPECT_TRUE(pipe.final_status().ok());
  EXPECT_FALSE(pipe.overflowed());
}

TEST(ResponsePipe, WhatTheClientReadsMakesRoomForMore) {
  ResponsePipe pipe(8);
  std::string chunk;
  for (int i = 0; i < 100; ++i) {  // 500 bytes through a pipe of 8
    ASSERT_TRUE(pipe.PutBody("12345", 5)) << i;
    ASSERT_TRUE(pipe.NextChunk(&chunk));
  }
  EXPECT_FALSE(pipe.overflowed());
}

TEST(ResponsePipe, AClientThatFallsBehindPastTheBoundIsCutOffAndItsChunksFreed) {
  ResponsePipe pipe(8);
  ASSERT_TRUE(pipe.PutBody("12345", 5));
  ASSERT_TRUE(pipe.PutBody("678", 3));  // 8 unsent: at the bound, not past it
  EXPECT_FALSE(pipe.PutBody("9", 1));
  EXPECT_TRUE(pipe.overflowed());
  EXPECT_EQ(pipe.unsent(), 8u);
  EXPECT_TRUE(pipe.cancel_token().cancelled()) << "the upstream exchange is stopped";
  EXPECT_FALSE(pipe.PutBody("x", 1)) << "nothing more is taken";
  std::string chunk;
  EXPECT_FALSE(pipe.NextChunk(&chunk)) << "what waited is dropped, not sent late";
  EXPECT_EQ(pipe.final_status().code(), ErrorCode::kTimeout) << "before the producer finished";
  pipe.Finish(Status::Ok());
  EXPECT_EQ(pipe.final_status().code(), ErrorCode::kTimeout) << "the answer was cut short";
}

}  // namespace
}  // namespace agentkv

#include "agentkv/checksum.h"

#include <gtest/gtest.h>

#include <string>

namespace agentkv {
namespace {

// Reference values of the xxHash project's XXH64.
TEST(Checksum, MatchesReferenceXxh64Values) {
  EXPECT_EQ(Xxh64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(Xxh64("a", 1), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(Xxh64("abc", 3), 0x44BC2CF5AD770999ULL);
}

TEST(Checksum, AFlippedBitOrAMissingTailChangesTheDigest) {
  std::string data(100000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  const std::uint64_t base = Xxh64(data.data(), data.size());
  std::string flipped = data;
  flipped[54321] ^= 0x04;
  EXPECT_NE(Xxh64(flipped.data(), flipped.size()), base);
  EXPECT_NE(Xxh64(data.data(), data.size() - 1), base);
}

}  // namespace
}  // namespace agentkv

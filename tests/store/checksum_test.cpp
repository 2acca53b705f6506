#include "store/checksum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

namespace agentkv {
namespace {

// Reference values of the xxHash project's XXH64.
TEST(Checksum, MatchesReferenceXxh64Values) {
  EXPECT_EQ(Xxh64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(Xxh64("a", 1), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(Xxh64("abc", 3), 0x44BC2CF5AD770999ULL);
}

std::string Pattern(std::size_t n) {
  std::string data(n, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  return data;
}

// Inputs past one 32-byte stripe, checked with xxhsum -H1 (Debian's xxhash).
TEST(Checksum, MatchesXxhsumOnInputsOfManyStripes) {
  EXPECT_EQ(Xxh64(Pattern(40).data(), 40), 0x42d6b08c34e7aab4ULL);
  EXPECT_EQ(Xxh64(Pattern(100000).data(), 100000), 0x051a072c7fa1f5deULL);
}

TEST(Checksum, StreamingInAnyPiecesEqualsTheWhole) {
  const std::string data = Pattern(100000);
  for (std::size_t piece : {1, 7, 31, 32, 33, 4096, 99999}) {
    Xxh64Stream stream;
    for (std::size_t at = 0; at < data.size(); at += piece) {
      stream.Update(data.data() + at, std::min(piece, data.size() - at));
    }
    EXPECT_EQ(stream.Digest(), 0x051a072c7fa1f5deULL) << "pieces of " << piece;
  }
}

TEST(Checksum, DigestFileReadsFilesLargerThanOneChunk) {
  const std::string data = Pattern(3 * (1 << 20) + 17);
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / "agentkv-checksum-test.bin";
  std::ofstream(path, std::ios::binary) << data;
  Result<FileDigest> d = DigestFile(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size, data.size());
  EXPECT_EQ(d->xxh64, Xxh64(data.data(), data.size()));
}

TEST(Checksum, AFlippedBitOrAMissingTailChangesTheDigest) {
  const std::string data = Pattern(100000);
  const std::uint64_t base = Xxh64(data.data(), data.size());
  std::string flipped = data;
  flipped[54321] ^= 0x04;
  EXPECT_NE(Xxh64(flipped.data(), flipped.size()), base);
  EXPECT_NE(Xxh64(data.data(), data.size() - 1), base);
}

}  // namespace
}  // namespace agentkv

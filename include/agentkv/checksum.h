#pragma once
// XXH64 of a byte range or a whole file: a fast checksum (GB/s) that detects
// torn, truncated or flipped memory files. Not a defence against tampering.
// Pure functions, thread-safe.

#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "agentkv/status.h"

namespace agentkv {

std::uint64_t Xxh64(const void* data, std::size_t size, std::uint64_t seed = 0);

struct FileDigest {
  std::uint64_t size = 0;
  std::uint64_t xxh64 = 0;
};

// Reads the whole file. Returns kIo if it cannot be read.
Result<FileDigest> DigestFile(const std::filesystem::path& path);

}  // namespace agentkv

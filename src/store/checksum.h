#pragma once
// XXH64 of a byte range or a whole file (libxxhash): a fast checksum (GB/s)
// that detects torn, truncated or flipped memory files. Not a defence
// against tampering. Pure functions, thread-safe.

#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "agentkv/file_system.h"
#include "agentkv/status.h"

struct XXH64_state_s;

namespace agentkv {

std::uint64_t Xxh64(const void* data, std::size_t size, std::uint64_t seed = 0);

// The same checksum fed piece by piece: Digest() after any split of the input
// into Update() calls equals Xxh64() of the whole. Not thread-safe.
class Xxh64Stream {
 public:
  explicit Xxh64Stream(std::uint64_t seed = 0);
  ~Xxh64Stream();
  Xxh64Stream(const Xxh64Stream&) = delete;
  Xxh64Stream& operator=(const Xxh64Stream&) = delete;
  void Update(const void* data, std::size_t size);
  std::uint64_t Digest() const;

 private:
  XXH64_state_s* state_;  // libxxhash's XXH64_state_t
};

struct FileDigest {
  std::uint64_t size = 0;
  std::uint64_t xxh64 = 0;
};

// Reads the whole file, a chunk at a time. Returns kIo if it cannot be read.
Result<FileDigest> DigestFile(FileSystem& files, const std::filesystem::path& path);
// The same on the real file system.
Result<FileDigest> DigestFile(const std::filesystem::path& path);

}  // namespace agentkv

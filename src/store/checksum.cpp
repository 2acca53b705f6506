#include "store/checksum.h"

#include <xxhash.h>

#include <new>

namespace agentkv {

Xxh64Stream::Xxh64Stream(std::uint64_t seed) : state_(XXH64_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH64_reset(state_, seed);
}

Xxh64Stream::~Xxh64Stream() { XXH64_freeState(state_); }

void Xxh64Stream::Update(const void* data, std::size_t size) { XXH64_update(state_, data, size); }

std::uint64_t Xxh64Stream::Digest() const { return XXH64_digest(state_); }

std::uint64_t Xxh64(const void* data, std::size_t size, std::uint64_t seed) {
  return XXH64(data, size, seed);
}

Result<FileDigest> DigestFile(FileSystem& files, const std::filesystem::path& path) {
  Xxh64Stream stream;
  std::uint64_t size = 0;
  Status read = files.Read(path, [&](const char* data, std::size_t n) {
    stream.Update(data, n);
    size += n;
  });
  if (!read.ok()) return read;
  return FileDigest{size, stream.Digest()};
}

Result<FileDigest> DigestFile(const std::filesystem::path& path) {
  return DigestFile(RealFileSystem(), path);
}

}  // namespace agentkv

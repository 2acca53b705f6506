#include "store/checksum.h"

#include <cstring>

namespace agentkv {

namespace {

constexpr std::uint64_t kP1 = 11400714785074694791ULL;
constexpr std::uint64_t kP2 = 14029467366897019727ULL;
constexpr std::uint64_t kP3 = 1609587929392839161ULL;
constexpr std::uint64_t kP4 = 9650029242287828579ULL;
constexpr std::uint64_t kP5 = 2870177450012600261ULL;

std::uint64_t Rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

std::uint64_t Read64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64, Arm64 Linux)
  return v;
}

std::uint32_t Read32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::uint64_t Round(std::uint64_t acc, std::uint64_t input) {
  acc += input * kP2;
  return Rotl(acc, 31) * kP1;
}

std::uint64_t Merge(std::uint64_t acc, std::uint64_t v) {
  acc ^= Round(0, v);
  return acc * kP1 + kP4;
}

}  // namespace

Xxh64Stream::Xxh64Stream(std::uint64_t seed)
    : seed_(seed), v_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1} {}

void Xxh64Stream::Stripe(const unsigned char* p) {
  for (std::size_t lane = 0; lane < 4; ++lane) v_[lane] = Round(v_[lane], Read64(p + 8 * lane));
}

void Xxh64Stream::Update(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += size;
  if (buffered_ + size < sizeof buf_) {
    if (size > 0) std::memcpy(buf_ + buffered_, p, size);
    buffered_ += size;
    return;
  }
  if (buffered_ > 0) {
    const std::size_t fill = sizeof buf_ - buffered_;
    std::memcpy(buf_ + buffered_, p, fill);
    Stripe(buf_);
    p += fill;
    size -= fill;
    buffered_ = 0;
  }
  for (; size >= sizeof buf_; p += sizeof buf_, size -= sizeof buf_) Stripe(p);
  if (size > 0) std::memcpy(buf_, p, size);
  buffered_ = size;
}

std::uint64_t Xxh64Stream::Digest() const {
  std::uint64_t h;
  if (total_ >= sizeof buf_) {
    h = Rotl(v_[0], 1) + Rotl(v_[1], 7) + Rotl(v_[2], 12) + Rotl(v_[3], 18);
    h = Merge(Merge(Merge(Merge(h, v_[0]), v_[1]), v_[2]), v_[3]);
  } else {
    h = seed_ + kP5;
  }
  h += total_;
  const unsigned char* p = buf_;
  const unsigned char* const end = buf_ + buffered_;
  for (; p + 8 <= end; p += 8) h = Rotl(h ^ Round(0, Read64(p)), 27) * kP1 + kP4;
  if (p + 4 <= end) {
    h = Rotl(h ^ (std::uint64_t{Read32(p)} * kP1), 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) h = Rotl(h ^ (std::uint64_t{*p} * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::uint64_t Xxh64(const void* data, std::size_t size, std::uint64_t seed) {
  Xxh64Stream stream(seed);
  stream.Update(data, size);
  return stream.Digest();
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

#include "upstream/model_info.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>

namespace agentkv {

namespace {

// GGUF value types (gguf.h).
enum : std::uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
};

constexpr std::uint64_t kMaxString = 64u << 20;  // a chat template is large; none is this large
constexpr std::uint64_t kMaxCount = 1u << 28;

std::uint64_t ScalarSize(std::uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
      return 8;
    default:
      return 0;
  }
}

bool IsInteger(std::uint32_t type) {
  return ScalarSize(type) > 0 && type != kF32 && type != kF64 && type != kBool;
}

// Reads the little-endian metadata section, one piece at a time.
class Reader {
 public:
  explicit Reader(std::ifstream& in) : in_(in) {
    in_.seekg(0, std::ios::end);
    size_ = static_cast<std::uint64_t>(in_.tellg());
    in_.seekg(0);
  }

  template <typename T>
  std::optional<T> Get() {
    T v{};
    if (!in_.read(reinterpret_cast<char*>(&v), sizeof v)) return std::nullopt;
    return v;
  }
  std::optional<std::string> String() {
    std::optional<std::uint64_t> n = Get<std::uint64_t>();
    if (!n || *n > kMaxString || *n > size_) return std::nullopt;
    std::string s(*n, '\0');
    if (*n > 0 && !in_.read(s.data(), static_cast<std::streamsize>(*n))) return std::nullopt;
    return s;
  }
  // A seek past the end succeeds: the size bounds it.
  bool Skip(std::uint64_t bytes) {
    const std::uint64_t at = static_cast<std::uint64_t>(in_.tellg());
    if (!in_ || bytes > size_ - at) return false;
    in_.seekg(static_cast<std::streamoff>(bytes), std::ios::cur);
    return static_cast<bool>(in_);
  }
  // Reads a scalar of any integer type as a signed value.
  std::optional<long long> Integer(std::uint32_t type) {
    switch (type) {
      case kU8:
        return Widen(Get<std::uint8_t>());
      case kI8:
        return Widen(Get<std::int8_t>());
      case kU16:
        return Widen(Get<std::uint16_t>());
      case kI16:
        return Widen(Get<std::int16_t>());
      case kU32:
        return Widen(Get<std::uint32_t>());
      case kI32:
        return Widen(Get<std::int32_t>());
      case kU64:
        return Widen(Get<std::uint64_t>());
      case kI64:
        return Widen(Get<std::int64_t>());
      default:
        return std::nullopt;
    }
  }
  // Skips a value of `type` (arrays included).
  bool SkipValue(std::uint32_t type) {
    if (const std::uint64_t size = ScalarSize(type)) return Skip(size);
    if (type == kString) return String().has_value();
    if (type != kArray) return false;
    std::optional<std::uint32_t> elem = Get<std::uint32_t>();
    std::optional<std::uint64_t> count = Get<std::uint64_t>();
    // Arrays of arrays are refused, as ggml refuses them: no recursion depth
    // for a file to exhaust.
    if (!elem || !count || *count > kMaxCount || *elem == kArray) return false;
    if (const std::uint64_t size = ScalarSize(*elem)) return Skip(size * *count);
    for (std::uint64_t i = 0; i < *count; ++i) {
      if (!SkipValue(*elem)) return false;
    }
    return true;
  }

 private:
  template <typename T>
  static std::optional<long long> Widen(std::optional<T> v) {
    if (!v) return std::nullopt;
    return static_cast<long long>(*v);
  }
  std::ifstream& in_;
  std::uint64_t size_ = 0;
};

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

Result<ModelInfo> ReadModelInfo(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(ErrorCode::kIo, "cannot read " + path.string());
  const Status malformed = Status::Error(ErrorCode::kInvalidArgument,
                                         path.string() + " is not a GGUF file agentkv reads");
  Reader r(in);  // before the first read: it measures the file
  char magic[4] = {};
  if (!in.read(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0) return malformed;
  std::optional<std::uint32_t> version = r.Get<std::uint32_t>();
  std::optional<std::uint64_t> tensors = r.Get<std::uint64_t>();
  std::optional<std::uint64_t> kvs = r.Get<std::uint64_t>();
  if (!version || (*version != 2 && *version != 3) || !tensors || !kvs || *kvs > kMaxCount) {
    return malformed;
  }
  ModelInfo info;
  // Keys are read in file order; general.architecture comes first in every
  // writer we know, but per-architecture keys are matched by suffix anyway.
  for (std::uint64_t i = 0; i < *kvs; ++i) {
    std::optional<std::string> key = r.String();
    std::optional<std::uint32_t> type = r.Get<std::uint32_t>();
    if (!key || !type) return malformed;
    const std::string suffix = key->substr(std::min(key->find('.'), key->size()));
    if (*key == "general.architecture" && *type == kString) {
      std::optional<std::string> arch = r.String();
      if (!arch) return malformed;
      info.arch = *arch;
    } else if (long long* field = suffix == ".attention.sliding_window" ? &info.sliding_window
                                  : suffix == ".expert_count"           ? &info.expert_count
                                                                        : nullptr;
               field && IsInteger(*type)) {
      std::optional<long long> n = r.Integer(*type);
      if (!n) return malformed;
      *field = *n;
    } else {
      if (StartsWith(suffix, ".ssm.") || StartsWith(suffix, ".shortconv.") ||
          StartsWith(suffix, ".wkv.")) {
        info.recurrent = true;
      }
      if (!r.SkipValue(*type)) return malformed;
    }
  }
  return info;
}

}  // namespace agentkv

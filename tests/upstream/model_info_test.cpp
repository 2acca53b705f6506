#include "upstream/model_info.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "upstream/serving_mode.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

// Writes GGUF metadata the way gguf-py does: little-endian, keys as
// length-prefixed strings, then a type and a value.
class GgufBuilder {
 public:
  GgufBuilder& Kv(const std::string& key, std::uint32_t type) {
    ++kvs_;
    Str(key);
    Put(type);
    return *this;
  }
  GgufBuilder& String(const std::string& key, const std::string& value) {
    Kv(key, 8);
    Str(value);
    return *this;
  }
  GgufBuilder& U32(const std::string& key, std::uint32_t value) {
    Kv(key, 4);
    Put(value);
    return *this;
  }
  GgufBuilder& Strings(const std::string& key, const std::vector<std::string>& values) {
    Kv(key, 9);
    Put(std::uint32_t{8});
    Put(std::uint64_t{values.size()});
    for (const std::string& v : values) Str(v);
    return *this;
  }
  GgufBuilder& Floats(const std::string& key, std::uint64_t n) {
    Kv(key, 9);
    Put(std::uint32_t{6});
    Put(n);
    body_.append(n * 4, '\0');
    return *this;
  }
  std::string Bytes(std::uint32_t version = 3) const {
    std::string out = "GGUF";
    Append(out, version);
    Append(out, std::uint64_t{0});  // tensors
    Append(out, kvs_);
    return out + body_;
  }

 private:
  template <typename T>
  static void Append(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <typename T>
  void Put(T v) {
    Append(body_, v);
  }
  void Str(const std::string& s) {
    Put(std::uint64_t{s.size()});
    body_ += s;
  }
  std::string body_;
  std::uint64_t kvs_ = 0;
};

class ModelInfoTest : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove(path_); }
  Result<ModelInfo> Read(const std::string& bytes) {
    std::ofstream(path_, std::ios::binary) << bytes;
    return ReadModelInfo(path_);
  }
  fs::path path_ = fs::temp_directory_path() / ("agentkv-gguf-" + std::to_string(::getpid()));
};

TEST_F(ModelInfoTest, ReadsTheArchitectureAndTheSlidingWindowPastLargeArrays) {
  Result<ModelInfo> info = Read(GgufBuilder()
                                    .String("general.architecture", "gemma3")
                                    .Strings("tokenizer.ggml.tokens", {"<s>", "a", "bb"})
                                    .Floats("tokenizer.ggml.scores", 3)
                                    .U32("gemma3.attention.sliding_window", 512)
                                    .U32("gemma3.block_count", 2)
                                    .Bytes());
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->arch, "gemma3");
  EXPECT_EQ(info->sliding_window, 512);
  EXPECT_FALSE(info->recurrent);
  EXPECT_EQ(info->expert_count, 0);
}

TEST_F(ModelInfoTest, TellsRecurrentAndMixtureOfExpertsModels) {
  Result<ModelInfo> info = Read(GgufBuilder()
                                    .String("general.architecture", "granitehybrid")
                                    .U32("granitehybrid.ssm.state_size", 128)
                                    .U32("granitehybrid.expert_count", 8)
                                    .Bytes(2));
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_TRUE(info->recurrent);
  EXPECT_EQ(info->expert_count, 8);
  EXPECT_EQ(info->sliding_window, 0);
}

TEST_F(ModelInfoTest, RefusesWhatIsNotGgufOrIsCutShort) {
  EXPECT_EQ(Read("fake weights").status().code(), ErrorCode::kInvalidArgument);
  const std::string whole =
      GgufBuilder().String("general.architecture", "llama").U32("llama.block_count", 2).Bytes();
  EXPECT_EQ(Read(whole.substr(0, whole.size() - 2)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Read(GgufBuilder().Bytes(7)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Read(GgufBuilder().Bytes()).ok()) << "no metadata at all is still a GGUF file";
  fs::remove(path_);
  EXPECT_EQ(ReadModelInfo(path_).status().code(), ErrorCode::kIo);
}

TEST(ServingMode, ASlidingWindowModelGetsSwaFullWhenAgentkvStartsLlamaServer) {
  ModelInfo gemma{"gemma3", 512, false, 0};
  std::vector<std::string> args = {"--ctx-size", "8192"};
  ServingMode m = DecideServing(gemma, false, &args);
  EXPECT_TRUE(m.persist);
  EXPECT_TRUE(m.swa_full);
  EXPECT_TRUE(m.swa_full_added);
  EXPECT_EQ(args.back(), "--swa-full");

  args = {"--swa-full"};
  m = DecideServing(gemma, true, &args);
  EXPECT_FALSE(m.swa_full_added) << "already there";
  EXPECT_EQ(args.size(), 1u);
}

TEST(ServingMode, ASlidingWindowModelBehindALlamaServerWithoutSwaFullIsServedStateless) {
  ModelInfo gemma{"gemma3", 512, false, 0};
  ServingMode m = DecideServing(gemma, false, nullptr);
  EXPECT_FALSE(m.persist);
  EXPECT_NE(m.why_stateless.find("--swa-full"), std::string::npos);
  EXPECT_TRUE(DecideServing(gemma, true, nullptr).persist);
  EXPECT_TRUE(DecideServing(ModelInfo{"llama", 0, false, 0}, false, nullptr).persist);
  EXPECT_TRUE(DecideServing(ModelInfo{}, false, nullptr).persist) << "unknown: as before";
}

}  // namespace
}  // namespace agentkv

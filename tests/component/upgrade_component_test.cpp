// Upgrades keep every agent's memory: a memory directory written by an
// earlier agentkv is read by this one, and one written by a newer agentkv is
// refused with nothing in it changed (a downgrade).
//
// tests/fixtures/memory-format-1/ was written once by agentkv at commit
// 75a14c6 (metadata without a "format" field: format 1, as every release
// before the field existed) through the fake llama-server program with 2
// slots (tests/fixtures/memory-format-1/README.md says how). It is never
// regenerated: it stands for directories users have on disk.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "component/fake_daemon_fixture.h"
#include "store/store_files.h"

namespace agentkv::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kFixture = fs::path(AGENTKV_SOURCE_DIR) / "tests/fixtures/memory-format-1";

// The memory files of `dir` (metadata and state), by name, with their bytes.
std::map<std::string, std::string> Files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const fs::path ext = e.path().extension();
    if (!e.is_regular_file() || (ext != ".meta" && ext != ".kv")) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()].assign(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

class UpgradeTest : public FakeDaemonTest {
 protected:
  // The fixture's files in a fresh memory directory, no daemon on it yet.
  void CopyFixture() {
    Start(2);
    daemon_.reset();
    for (const fs::directory_entry& e : fs::directory_iterator(kFixture)) {
      if (e.path().extension() == ".kv" || e.path().extension() == ".meta") {
        fs::copy_file(e.path(), dir_ / e.path().filename(), fs::copy_options::overwrite_existing);
      }
    }
  }
};

TEST_F(UpgradeTest, AMemoryDirectoryOfTheFirstFormatIsReadAndEveryAgentRestored) {
  CopyFixture();
  Restart();
  ASSERT_EQ(daemon_->store().AgentCount(), 3u) << "planner, coder, critic";
  for (const char* agent : {"planner", "coder", "critic"}) {
    httplib::Result r = Post(std::string("/agents/") + agent + "/v1/chat/completions",
                             Chat(agent, "hello, and then some"));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("X-Agentkv-Placement"), "restored") << agent;
    EXPECT_GT(json::parse(r->body)["timings"]["cache_n"].get<int>(), 0)
        << agent << "'s own KV came back";
  }
  EXPECT_TRUE(fake_->violations().empty()) << fake_->violations().front();
  daemon_->placer().DrainSaves();
  // Saved again by this version: its metadata now says its format.
  const std::string meta_name = StoreFiles::Hash(AgentId::Parse("coder").value()) + ".meta";
  std::ifstream meta(dir_ / meta_name);
  EXPECT_EQ(json::parse(meta)["format"], 1);
}

TEST_F(UpgradeTest, AMemoryDirectoryOfANewerFormatIsRefusedAndLeftAsItWas) {
  CopyFixture();
  const std::string meta_name = StoreFiles::Hash(AgentId::Parse("critic").value()) + ".meta";
  json meta = json::parse(std::ifstream(dir_ / meta_name));
  meta["format"] = 2;
  std::ofstream(dir_ / meta_name) << meta.dump(1) << "\n";
  const std::map<std::string, std::string> before = Files(dir_);

  DaemonOptions o;
  o.proxy.port = 0;
  o.upstream.base_url = fake_->url();
  o.memory_dir = dir_;
  o.store.min_free_bytes = 0;
  Result<std::unique_ptr<Daemon>> d = Daemon::Start(o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("written by a newer agentkv"), std::string::npos)
      << d.status().message();
  EXPECT_EQ(Files(dir_), before) << "nothing deleted, moved or rewritten";
  EXPECT_FALSE(fs::exists(dir_ / "quarantine" / meta_name));
}

}  // namespace
}  // namespace agentkv::testing

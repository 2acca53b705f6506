#include "store/store.h"

#include <gtest/gtest.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "store/sha256.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("agentkv-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> Open(const std::string& fingerprint = "fp1", StoreOptions o = {}) {
    o.min_free_bytes = 0;
    auto s = std::make_unique<Store>(dir_, fingerprint, o, [this] { return clock_; });
    EXPECT_TRUE(s->Open().ok());
    return s;
  }
  // Plays llama-server's part: writes the temporary the store asked for.
  Status Save(Store& s, const char* agent, const std::string& kv) {
    Result<std::string> temp = s.BeginSave(Id(agent), 10);
    EXPECT_TRUE(temp.ok());
    std::ofstream(dir_ / temp.value(), std::ios::binary) << kv;
    return s.CommitSave(Id(agent), static_cast<long long>(kv.size()));
  }
  std::vector<std::string> Files(const fs::path& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path StateOf(Store& s, const char* agent) {
    Result<RestoreFile> f = s.PrepareRestore(Id(agent));
    EXPECT_TRUE(f.ok()) << f.status().message();
    return dir_ / f->name;
  }

  fs::path dir_;
  std::int64_t clock_ = 1000;
};

TEST_F(StoreTest, ASavedMemorySurvivesARestartUnderAHashedName) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "planner", "kv-bytes").ok());
  }
  for (const std::string& name : Files(dir_)) {
    EXPECT_EQ(name.find("planner"), std::string::npos) << name;
  }
  auto s = Open();
  ASSERT_TRUE(s->HasMemory(Id("planner")));
  EXPECT_EQ(s->Find(Id("planner"))->bytes, 8);
  EXPECT_EQ(Read(StateOf(*s, "planner")), "kv-bytes");
  EXPECT_EQ(s->TotalBytes(), 8u);
}

TEST_F(StoreTest, ANewSaveReplacesTheOldGenerationAndRemovesIt) {
  auto s = Open();
  EXPECT_EQ(s->bytes_per_1k_tokens(), 0) << "nothing measured yet";
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  EXPECT_EQ(s->bytes_per_1k_tokens(), 1000) << "3 bytes for 3 tokens";
  ASSERT_TRUE(Save(*s, "a", "newer").ok());
  EXPECT_EQ(Read(StateOf(*s, "a")), "newer");
  EXPECT_EQ(Files(dir_).size(), 2u) << "one state file and one metadata file";
  EXPECT_EQ(s->TotalBytes(), 5u);
}

TEST_F(StoreTest, OpeningRemovesWhatACrashLeftAndKeepsTheLastCompleteSave) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    // A crash after the next generation was renamed, before its metadata:
    Result<std::string> temp = s->BeginSave(Id("a"), 10);
    const std::string state = temp.value().substr(0, temp.value().size() - 4);
    std::ofstream(dir_ / state) << "new but unreferenced";
    std::ofstream(dir_ / temp.value()) << "torn";
  }
  auto s = Open();
  EXPECT_EQ(Read(StateOf(*s, "a")), "old");
  EXPECT_EQ(Files(dir_).size(), 2u);
}

TEST_F(StoreTest, AFlippedByteIsDetectedAndTheFileQuarantined) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "abcdefgh").ok());
  const fs::path state = StateOf(*s, "a");
  {
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('X');
  }
  // As a write a moment after the save would (the kernel's file times move
  // in ticks of a few ms): the store then reads the file again in full.
  fs::last_write_time(state, fs::last_write_time(state) + std::chrono::seconds(1));
  Result<RestoreFile> r = s->PrepareRestore(Id("a"));
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_FALSE(fs::exists(state));
  EXPECT_EQ(s->quarantined(), 1);
  EXPECT_FALSE(Files(dir_ / "quarantine").empty());
}

TEST_F(StoreTest, ATruncatedFileIsQuarantinedWhenTheStoreOpens) {
  fs::path state;
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "abcdefgh").ok());
    state = StateOf(*s, "a");
  }
  fs::resize_file(state, 3);
  auto s = Open();
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, MemoryFromAnotherModelIsNeverOffered) {
  {
    auto s = Open("model-one");
    ASSERT_TRUE(Save(*s, "a", "abcdefgh").ok());
  }
  auto s = Open("model-two");
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, MetadataCopiedOntoAnotherAgentsNameIsRejected) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "abc").ok());
    ASSERT_TRUE(Save(*s, "b", "xyz").ok());
  }
  std::string meta_a, meta_b;
  for (const std::string& n : Files(dir_)) {
    if (n.size() > 5 && n.substr(n.size() - 5) == ".meta") (meta_a.empty() ? meta_a : meta_b) = n;
  }
  fs::copy_file(dir_ / meta_a, dir_ / meta_b, fs::copy_options::overwrite_existing);
  auto s = Open();
  EXPECT_EQ(s->List().size(), 1u);
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, TheBudgetDeletesLeastRecentlyUsedMemoriesFirst) {
  StoreOptions o;
  o.budget_bytes = 10;
  auto s = Open("fp1", o);
  ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
  clock_ = 2000;
  ASSERT_TRUE(Save(*s, "b", "bbbb").ok());
  clock_ = 3000;
  s->Touch(Id("a"));  // a is now more recent than b
  ASSERT_TRUE(Save(*s, "c", "cccc").ok());
  std::vector<AgentId> gone = s->EnforceBudget({Id("c")});
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0], Id("b"));
  EXPECT_LE(s->TotalBytes(), 10u);
  EXPECT_TRUE(s->HasMemory(Id("a")));
  EXPECT_TRUE(s->HasMemory(Id("c")));
  EXPECT_EQ(Files(dir_).size(), 4u);
}

// Files written before agentkv took SHA-256 from OpenSSL and XXH64 from
// libxxhash (names from sha256sum, the checksum from xxhsum -H1): the same
// values, so every memory directory on disk stays valid.
TEST_F(StoreTest, ACommittedMemoryDirectoryStillOpensAndPassesItsCheck) {
  fs::copy(fs::path(AGENTKV_STORE_FIXTURES) / "memory-v1", dir_, fs::copy_options::recursive);
  fs::remove(dir_ / "README");
  auto s = Open("fp-fixture");
  ASSERT_TRUE(s->HasMemory(Id("fixture-agent")));
  Result<RestoreFile> restore = s->PrepareRestore(Id("fixture-agent"));
  ASSERT_TRUE(restore.ok()) << restore.status().message();
  EXPECT_EQ(restore->tokens, TokenCount(10));
  EXPECT_EQ(s->quarantined(), 0);
}

TEST_F(StoreTest, AClaimLastsWhileARequestOrASlotOrAMemoryHoldsIt) {
  auto s = Open();
  s->Claim(Id("a"), "key-a");
  s->Claim(Id("a"), "key-b");  // the first claim holds
  s->Unclaim(Id("a"), false);
  EXPECT_EQ(s->ScopeOf(Id("a")), "key-a") << "one request still holds it";
  s->Unclaim(Id("a"), false);
  EXPECT_FALSE(s->ScopeOf(Id("a"))) << "nothing to save: nothing kept";

  s->Claim(Id("b"), "key-b");
  s->Unclaim(Id("b"), true);
  EXPECT_EQ(s->ScopeOf(Id("b")), "key-b") << "resident: its save will need it";
  s->Claim(Id("c"), "key-c");  // a request in flight
  EXPECT_EQ(s->SweepClaims([](const AgentId& a) { return a == Id("b"); }), 2u);
  EXPECT_EQ(s->SweepClaims([](const AgentId&) { return false; }), 1u) << "b was evicted";
  EXPECT_EQ(s->ScopeOf(Id("c")), "key-c");
  ASSERT_TRUE(Save(*s, "c", "cccc").ok());
  s->Unclaim(Id("c"), false);
  EXPECT_EQ(s->ClaimCount(), 0u);
  EXPECT_EQ(s->ScopeOf(Id("c")), "key-c") << "its memory holds the scope now";
}

TEST_F(StoreTest, RemoveLeavesNothingOfTheAgentOnDisk) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "abc").ok());
  ASSERT_TRUE(Save(*s, "b", "xyz").ok());
  EXPECT_TRUE(s->Remove(Id("a")).value());
  EXPECT_FALSE(s->Remove(Id("a")).value());
  EXPECT_EQ(Files(dir_).size(), 2u);
  EXPECT_TRUE(s->HasMemory(Id("b")));
}

TEST_F(StoreTest, AForkStartsFromACopyOfTheParentsMemory) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "parent", "shared-kv").ok());
  ASSERT_TRUE(s->Fork(Id("parent"), Id("child")).ok());
  EXPECT_EQ(Read(StateOf(*s, "child")), "shared-kv");
  EXPECT_EQ(s->Fork(Id("nobody"), Id("x")).code(), ErrorCode::kNotFound);
}

TEST_F(StoreTest, AForkWhoseCopyDoesNotMatchTheParentsChecksumGivesTheChildNothing) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "parent", "shared-kv").ok());
  std::ofstream(StateOf(*s, "parent"), std::ios::binary) << "Shared-kv";  // same size
  EXPECT_EQ(s->Fork(Id("parent"), Id("child")).code(), ErrorCode::kIo);
  EXPECT_FALSE(s->HasMemory(Id("child")));
  EXPECT_EQ(s->CheckFork(Id("parent")).code(), ErrorCode::kNotFound) << "the check finds it";
}

TEST_F(StoreTest, ASaveIsRefusedWhenTheDiskIsTooFull) {
  StoreOptions o;
  o.min_free_bytes = ~std::uint64_t{0} >> 2;
  auto s = std::make_unique<Store>(dir_, "fp", o);
  ASSERT_TRUE(s->Open().ok());
  EXPECT_EQ(s->BeginSave(Id("a"), 100).status().code(), ErrorCode::kIo);
}

std::string MetaName(const char* agent) { return Sha256Hex(agent) + ".meta"; }

TEST_F(StoreTest, OpeningSkipsAMetadataFileWithAWrongTypedFieldAndKeepsTheRest) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
    ASSERT_TRUE(Save(*s, "b", "bbbb").ok());
  }
  nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir_ / MetaName("a")));
  meta["tokens"] = "many";
  std::ofstream(dir_ / MetaName("a")) << meta.dump();
  auto s = Open();  // EXPECTs that it opens
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_TRUE(s->HasMemory(Id("b")));
  EXPECT_EQ(s->quarantined(), 1);
  EXPECT_EQ(s->TotalBytes(), 4u);
  // The state file stays, aside: the metadata may have been unreadable only for now.
  int a_states = 0;
  for (const std::string& f : Files(dir_ / "quarantine")) {
    a_states += f.find(Sha256Hex("a")) != std::string::npos && f.find(".kv") != std::string::npos;
  }
  EXPECT_EQ(a_states, 1);
}

TEST_F(StoreTest, MetadataWithValuesOutOfBoundsOrAStateFileElsewhereIsQuarantined) {
  std::ofstream(dir_.parent_path() / (dir_.filename().string() + "-outside.kv")) << "not ours";
  const std::pair<const char*, nlohmann::json> cases[] = {
      {"tokens", 9000000000000000000LL},
      {"created", -5},
      {"generation", 0},
      {"state_file", "../" + dir_.filename().string() + "-outside.kv"},
      {"state_file", Sha256Hex("b") + ".1.kv"},
  };
  for (const auto& [field, value] : cases) {
    SCOPED_TRACE(std::string(field) + " " + value.dump());
    fs::remove_all(dir_);
    {
      auto s = Open();
      ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
    }
    nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir_ / MetaName("a")));
    meta[field] = value;
    std::ofstream(dir_ / MetaName("a")) << meta.dump();
    auto s = Open();
    EXPECT_FALSE(s->HasMemory(Id("a")));
    EXPECT_EQ(s->quarantined(), 1);
  }
  EXPECT_EQ(Read(dir_.parent_path() / (dir_.filename().string() + "-outside.kv")), "not ours");
  fs::remove(dir_.parent_path() / (dir_.filename().string() + "-outside.kv"));
}

TEST_F(StoreTest, AStateFileThatIsALinkIsNeverReadOrRestoredThrough) {
  const fs::path outside = dir_.parent_path() / (dir_.filename().string() + "-outside");
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
  const fs::path state = StateOf(*s, "a");
  fs::rename(state, outside);  // the same bytes, the same size: only the link differs
  fs::create_symlink(outside, state);
  EXPECT_EQ(s->PrepareRestore(Id("a")).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(s->quarantined(), 1);
  EXPECT_EQ(Read(outside), "aaaa") << "the file it pointed to is untouched";
  fs::remove(outside);
}

TEST_F(StoreTest, AQuarantineThatIsALinkStopsTheStartAndNothingElsewhereIsMovedOrDeleted) {
  const fs::path elsewhere = dir_.parent_path() / (dir_.filename().string() + "-elsewhere");
  fs::create_directories(elsewhere);
  for (int i = 0; i < 5; ++i) std::ofstream(elsewhere / std::to_string(i)) << i;
  {
    StoreOptions o;
    o.quarantine_max_files = 2;
    auto s = Open("fp1", o);
    ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
    fs::remove_all(dir_ / "quarantine");
    fs::create_directory_symlink(elsewhere, dir_ / "quarantine");
    s->Quarantine(Id("a"), "test");  // a link made while it runs
    EXPECT_FALSE(s->HasMemory(Id("a")));
  }
  Store s(dir_, "fp1", StoreOptions{}, [this] { return clock_; });
  const Status opened = s.Open();
  EXPECT_FALSE(opened.ok());
  EXPECT_NE(opened.message().find("is not a directory of its own"), std::string::npos)
      << opened.message();
  EXPECT_EQ(Files(elsewhere).size(), 5u);
  EXPECT_EQ(Files(dir_).size(), 2u) << "a's files stay where they were";
  fs::remove_all(elsewhere);
}

TEST_F(StoreTest, OpeningNeitherStopsAtAnEntryItCannotRemoveNorDeletesFilesThatAreNotItsOwn) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
  }
  // A temporary that cannot be removed: a non-empty directory of that name.
  fs::create_directories(dir_ / (Sha256Hex("b") + ".meta.tmp"));
  std::ofstream(dir_ / (Sha256Hex("b") + ".meta.tmp") / "x") << "x";
  std::ofstream(dir_ / "notes.kv") << "the user's";
  std::ofstream(dir_ / "model.tmp") << "someone else's";
  std::ofstream(dir_ / (Sha256Hex("c") + ".7.kv")) << "an orphan of ours";
  std::ofstream(dir_ / (Sha256Hex("c") + ".7.kv.tmp")) << "a torn save of ours";
  auto s = Open();
  EXPECT_TRUE(s->HasMemory(Id("a")));
  EXPECT_TRUE(fs::exists(dir_ / "notes.kv"));
  EXPECT_TRUE(fs::exists(dir_ / "model.tmp"));
  EXPECT_FALSE(fs::exists(dir_ / (Sha256Hex("c") + ".7.kv")));
  EXPECT_FALSE(fs::exists(dir_ / (Sha256Hex("c") + ".7.kv.tmp")));
}

TEST_F(StoreTest, AFileThatCannotBeReadNowIsNotQuarantined) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
  const fs::path state = StateOf(*s, "a");
  fs::rename(state, dir_ / "aside");
  fs::create_directory(state);  // reading it fails, as on EIO
  Result<RestoreFile> r = s->PrepareRestore(Id("a"));
  EXPECT_EQ(r.status().code(), ErrorCode::kIo);
  EXPECT_TRUE(s->HasMemory(Id("a")));
  EXPECT_EQ(s->quarantined(), 0);
  fs::remove(state);
  fs::rename(dir_ / "aside", state);
  EXPECT_TRUE(s->PrepareRestore(Id("a")).ok()) << "and it is restored once readable";
  fs::remove(state);
  EXPECT_EQ(s->PrepareRestore(Id("a")).status().code(), ErrorCode::kNotFound) << "gone: proven";
  EXPECT_EQ(s->quarantined(), 1);
}

TEST_F(StoreTest, QuarantineKeepsOnlyItsNewestFilesWithinItsBounds) {
  StoreOptions o;
  o.quarantine_max_files = 4;
  auto s = Open("fp1", o);
  for (const char* agent : {"a", "b", "c"}) {
    ASSERT_TRUE(Save(*s, agent, "kv").ok());
    s->Quarantine(Id(agent), "test");
    ++clock_;
  }
  EXPECT_EQ(s->quarantined(), 3);
  const std::vector<std::string> kept = Files(dir_ / "quarantine");
  EXPECT_EQ(kept.size(), 4u);
  EXPECT_EQ(s->quarantine_usage().files, 4u);
  EXPECT_GT(s->quarantine_usage().bytes, 0u);
  const std::string newest = Sha256Hex("c");
  EXPECT_EQ(
      std::count_if(kept.begin(), kept.end(),
                    [&](const std::string& f) { return f.find(newest) != std::string::npos; }),
      3)
      << "c's metadata, state and reason are the newest";
  o.quarantine_max_files = 100;
  o.quarantine_max_bytes = 2;
  auto bytes_bound = Open("fp1", o);
  EXPECT_LE(bytes_bound->quarantine_usage().bytes, 2u);
}

// Runs `on_line` for each message logged while it is installed. No lock of
// its own: `on_line` may log (and so re-enter it).
class CallbackSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit CallbackSink(std::function<void(const std::string&)> on_line)
      : on_line_(std::move(on_line)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    on_line_(std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::function<void(const std::string&)> on_line_;
};

TEST_F(StoreTest, AMemoryTheBudgetIsDeletingIsNeitherOfferedForRestoreNorPickedAgain) {
  StoreOptions o;
  o.budget_bytes = 10;
  auto s = Open("fp1", o);
  ASSERT_TRUE(Save(*s, "a", "aaaa").ok());
  clock_ = 2000;
  ASSERT_TRUE(Save(*s, "b", "bbbb").ok());
  ASSERT_TRUE(Save(*s, "c", "cccc").ok());
  bool seen = false, offered = true;
  std::vector<AgentId> again;
  auto sink = std::make_shared<CallbackSink>([&](const std::string& line) {
    if (seen || line.find("deleting the memory of agent a") == std::string::npos) return;
    seen = true;  // a is being deleted: what would another request see?
    offered = s->PrepareRestore(Id("a")).ok();
    again = s->EnforceBudget();
  });
  spdlog::default_logger()->sinks().push_back(sink);
  const std::vector<AgentId> gone = s->EnforceBudget({Id("c")});
  spdlog::default_logger()->sinks().pop_back();
  ASSERT_TRUE(seen);
  EXPECT_FALSE(offered) << "a file being deleted was offered for a restore";
  EXPECT_TRUE(again.empty()) << "another enforcement picked the same victim";
  EXPECT_EQ(gone, std::vector<AgentId>{Id("a")});
  EXPECT_EQ(s->TotalBytes(), 8u);
  EXPECT_EQ(Files(dir_).size(), 4u);
}

// The budget, run by saves of many agents at once, leaves an index and a
// directory that agree: no memory indexed without its files, none on disk
// without its metadata, and a byte count that matches.
TEST_F(StoreTest, TheBudgetRunningConcurrentlyWithSavesKeepsIndexAndDiskInAgreement) {
  StoreOptions o;
  o.budget_bytes = 40;
  auto s = Open("fp1", o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const AgentId agent = Id(("t" + std::to_string(t) + "-" + std::to_string(i % 5)).c_str());
        Result<std::string> temp = s->BeginSave(agent, 10);
        ASSERT_TRUE(temp.ok());
        std::ofstream(dir_ / temp.value()) << "0123456789";
        ASSERT_TRUE(s->CommitSave(agent, 10).ok());
        s->EnforceBudget({agent});
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::uint64_t state_bytes = 0;
  std::size_t metas = 0;
  for (const std::string& f : Files(dir_)) {
    if (f.size() > 3 && f.substr(f.size() - 3) == ".kv") state_bytes += fs::file_size(dir_ / f);
    if (f.size() > 5 && f.substr(f.size() - 5) == ".meta") ++metas;
  }
  EXPECT_EQ(metas, s->List().size());
  EXPECT_EQ(state_bytes, s->TotalBytes());
  EXPECT_LE(s->TotalBytes(), 40u);
  for (const MemoryInfo& m : s->List()) EXPECT_TRUE(s->PrepareRestore(m.agent).ok());
  auto reopened = Open("fp1", o);
  EXPECT_EQ(reopened->List().size(), s->List().size());
}

}  // namespace
}  // namespace agentkv

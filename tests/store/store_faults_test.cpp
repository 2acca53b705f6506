// The store under I/O errors and crashes, injected through FaultFileSystem:
// whatever fails, an agent keeps its old memory or gets its new one, never
// a torn one, and nothing of a failed step is left on disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>

#include "store/fault_file_system.h"
#include "store/sha256.h"
#include "store/store.h"
#include "store/store_files.h"

namespace agentkv {
namespace {

namespace fs = std::filesystem;
using Op = testing::FaultFileSystem::Op;

AgentId Id(const char* s) { return AgentId::Parse(s).value(); }

class StoreFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(test->test_suite_name()) + "-" + test->name();
    for (char& c : name) c = c == '/' ? '-' : c;
    dir_ =
        fs::temp_directory_path() / ("agentkv-faults-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A store over `files`: the fault-injecting one unless told otherwise.
  std::unique_ptr<Store> Open(FileSystem* files = nullptr, StoreOptions o = {}) {
    o.min_free_bytes = min_free_;
    auto s = std::make_unique<Store>(
        dir_, "fp", o, [this] { return now_; }, files ? *files : faults_);
    EXPECT_TRUE(s->Open().ok());
    return s;
  }
  // After a crash: what a restarted process finds, on the real file system.
  std::unique_ptr<Store> Reopen() { return Open(&RealFileSystem()); }
  // Plays llama-server's part: writes the temporary the store asked for.
  Status Save(Store& s, const char* agent, const std::string& kv) {
    Result<std::string> temp = s.BeginSave(Id(agent), std::nullopt);
    EXPECT_TRUE(temp.ok()) << temp.status().message();
    if (!temp.ok()) return temp.status();
    std::ofstream(dir_ / temp.value(), std::ios::binary) << kv;
    return s.CommitSave(Id(agent), static_cast<long long>(kv.size()));
  }
  std::string Restored(Store& s, const char* agent) {
    Result<RestoreFile> f = s.PrepareRestore(Id(agent));
    if (!f.ok()) return "(" + f.status().message() + ")";
    std::ifstream in(dir_ / f->name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // The names of the agent's files in the memory directory.
  std::vector<std::string> FilesOf(const char* agent) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(Sha256Hex(agent), 0) == 0) names.push_back(name);
    }
    return names;
  }
  // Agent a's memory holds `kv` (as many tokens as bytes), whole, in the
  // store and on disk.
  void ExpectMemory(Store& s, const std::string& kv) {
    EXPECT_EQ(Restored(s, "a"), kv);
    EXPECT_EQ(s.Find(Id("a"))->tokens, static_cast<long long>(kv.size()));
    EXPECT_EQ(FilesOf("a").size(), 2u) << "one state file, one metadata file, no leftovers";
    EXPECT_EQ(s.quarantined(), 0);
  }
  void ExpectOldMemory(Store& s) { ExpectMemory(s, "old"); }

  fs::path dir_;
  testing::FaultFileSystem faults_;
  std::uint64_t min_free_ = 0;
  std::int64_t now_ = 1'000'000;  // unix seconds, moved by the tests
};

TEST_F(StoreFaultsTest, AnEioReadingTheFileBeforeARestoreLeavesItInPlaceAndReturnsIo) {
  ASSERT_TRUE(Save(*Open(), "a", "old").ok());
  auto s = Open();  // a file found at start is read in full before its restore
  faults_.FailOn(Op::kRead, ".kv", EIO);
  EXPECT_EQ(s->PrepareRestore(Id("a")).status().code(), ErrorCode::kIo);
  EXPECT_TRUE(s->HasMemory(Id("a")));
  EXPECT_EQ(s->quarantined(), 0);
  EXPECT_EQ(Restored(*s, "a"), "old") << "and it is restored once readable";
}

// The file the store wrote and checksummed itself, unchanged since, is not
// read again before a restore (the read would be of the page cache that
// just saw it written); after kTrustVerifiedSeconds it is.
TEST_F(StoreFaultsTest, AFileTheStoreSavedAndNobodyTouchedIsNotReadAgainForAWhile) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  faults_.FailOn(Op::kRead, ".kv", EIO, 1000);
  EXPECT_EQ(Restored(*s, "a"), "old");
  now_ += StoreFiles::kTrustVerifiedSeconds - 1;
  EXPECT_EQ(Restored(*s, "a"), "old");
  now_ += 1;
  EXPECT_EQ(s->PrepareRestore(Id("a")).status().code(), ErrorCode::kIo) << "read again";
}

// Any change to the file since its checksum matched (replaced: a new inode;
// written in place: a new modification time) sends it through a full check.
TEST_F(StoreFaultsTest, AFileReplacedOrWrittenSinceItsSaveIsCheckedInFull) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  ASSERT_TRUE(Save(*s, "b", "old").ok());
  const fs::path a = dir_ / s->PrepareRestore(Id("a"))->name;
  const fs::path b = dir_ / s->PrepareRestore(Id("b"))->name;
  std::ofstream(dir_ / "replacement", std::ios::binary) << "odd";
  fs::rename(dir_ / "replacement", a);
  {
    std::fstream io(b, std::ios::in | std::ios::out | std::ios::binary);
    io.put('X');
  }
  // The kernel stamps writes with a clock of a few ms: a write in the same
  // tick as the save would keep its time, one a moment later does not.
  fs::last_write_time(b, fs::last_write_time(b) + std::chrono::seconds(1));
  for (const char* agent : {"a", "b"}) {
    SCOPED_TRACE(agent);
    EXPECT_EQ(s->PrepareRestore(Id(agent)).status().code(), ErrorCode::kNotFound);
    EXPECT_FALSE(s->HasMemory(Id(agent)));
  }
  EXPECT_EQ(s->quarantined(), 2);
}

TEST_F(StoreFaultsTest, AFailedCopyGivesTheForkedChildNothing) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  faults_.FailOn(Op::kCopyFile, ".kv", EIO);
  EXPECT_EQ(s->Fork(Id("a"), Id("child")).code(), ErrorCode::kIo);
  EXPECT_FALSE(s->HasMemory(Id("child")));
  EXPECT_TRUE(FilesOf("child").empty());
  ExpectOldMemory(*s);
}

// The temporary's name is known: abandoning a save reads no directory.
TEST_F(StoreFaultsTest, AnAbandonedSaveRemovesItsTemporaryWithoutListingTheDirectory) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  faults_.FailOn(Op::kListFiles, "", EIO, 1000);
  Result<std::string> temp = s->BeginSave(Id("a"), std::nullopt);
  ASSERT_TRUE(temp.ok());
  std::ofstream(dir_ / temp.value()) << "half";
  s->AbortSave(Id("a"));
  EXPECT_FALSE(fs::exists(dir_ / temp.value()));
  ExpectOldMemory(*s);
}

TEST_F(StoreFaultsTest, ANegativeTokenCountIsKeptAsUnknown) {
  auto s = Open();
  Result<std::string> temp = s->BeginSave(Id("a"), std::nullopt);
  ASSERT_TRUE(temp.ok());
  std::ofstream(dir_ / temp.value()) << "kv";
  ASSERT_TRUE(s->CommitSave(Id("a"), -1).ok());
  EXPECT_EQ(s->Find(Id("a"))->tokens, std::nullopt);
  EXPECT_EQ(Reopen()->Find(Id("a"))->tokens, std::nullopt) << "and so it reads back";
}

// Before, -1 for "unknown" reached the check as a size of -1 tokens.
TEST_F(StoreFaultsTest, AnUnknownTokenCountNeverReachesTheFreeSpaceCheckAsANegativeSize) {
  min_free_ = 100;
  auto s = Open();
  ASSERT_TRUE(Save(*s, "b", std::string(1000, 'b')).ok());  // 1 byte per token
  faults_.SetFreeBytes(100 + 10);
  EXPECT_EQ(s->BeginSave(Id("b"), -5).status().code(), ErrorCode::kIo)
      << "b's saved 1000 tokens stand for the count it lacks";
  EXPECT_EQ(s->BeginSave(Id("b"), std::nullopt).status().code(), ErrorCode::kIo);
  faults_.SetFreeBytes(100);
  Result<std::string> unknown = s->BeginSave(Id("new"), -5);
  EXPECT_TRUE(unknown.ok()) << "nothing known: only the free-space floor counts";
  s->AbortSave(Id("new"));
  faults_.SetFreeBytes(99);
  EXPECT_EQ(s->BeginSave(Id("new"), -5).status().code(), ErrorCode::kIo) << "never below it";
}

// Where a fault strikes: the first call of `op` on a path ending in `suffix`.
struct Step {
  const char* name;
  Op op;
  const char* suffix;
};

template <typename Param>
std::string StepName(const ::testing::TestParamInfo<Param>& p) {
  return p.param.step.name;
}

// A crash point of a save, and whether the new memory rules by then.
struct CrashPoint {
  Step step;
  bool expect_new;
};

void PrintTo(const CrashPoint& p, std::ostream* os) { *os << p.step.name; }

class StoreCrashTest : public StoreFaultsTest, public ::testing::WithParamInterface<CrashPoint> {};

TEST_P(StoreCrashTest, ACrashAtThisStepOfASaveLeavesTheOldOrTheNewMemoryAndNoLeftovers) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    faults_.CrashAt(GetParam().step.op, GetParam().step.suffix);
    EXPECT_EQ(Save(*s, "a", "newer").ok(), GetParam().expect_new);
    ASSERT_TRUE(faults_.crashed());
  }
  ExpectMemory(*Reopen(), GetParam().expect_new ? "newer" : "old");
}

// Before the metadata rename the old memory rules; from it on, the new.
INSTANTIATE_TEST_SUITE_P(
    EveryStep, StoreCrashTest,
    ::testing::Values(CrashPoint{{"BeforeTheStateTempIsSynced", Op::kSyncFile, ".kv.tmp"}, false},
                      CrashPoint{{"StateTempWritten", Op::kRename, ".kv.tmp"}, false},
                      CrashPoint{{"StateRenamed", Op::kWriteFile, ".meta.tmp"}, false},
                      CrashPoint{{"MetaTempWritten", Op::kRename, ".meta.tmp"}, false},
                      CrashPoint{{"MetaRenamedBeforeTheDirectorySync", Op::kSyncDir, ""}, true},
                      CrashPoint{{"MetaRenamed", Op::kRemove, ".kv"}, true}),
    StepName<CrashPoint>);

// The same crash points in a shared directory, where this node's names
// carry its id: its restart removes its own leftovers.
class SharedStoreCrashTest : public StoreCrashTest {};

TEST_P(SharedStoreCrashTest, ACrashAtThisStepOfASharedSaveLeavesTheOldOrTheNewMemory) {
  StoreOptions shared;
  shared.node = "node-a";
  {
    auto s = Open(nullptr, shared);
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    faults_.CrashAt(GetParam().step.op, GetParam().step.suffix);
    EXPECT_EQ(Save(*s, "a", "newer").ok(), GetParam().expect_new);
    ASSERT_TRUE(faults_.crashed());
  }
  ExpectMemory(*Open(&RealFileSystem(), shared), GetParam().expect_new ? "newer" : "old");
}

INSTANTIATE_TEST_SUITE_P(
    EveryStep, SharedStoreCrashTest,
    ::testing::Values(CrashPoint{{"BeforeTheStateTempIsSynced", Op::kSyncFile, ".node-a.kv.tmp"},
                                 false},
                      CrashPoint{{"StateTempWritten", Op::kRename, ".node-a.kv.tmp"}, false},
                      CrashPoint{{"StateRenamed", Op::kWriteFile, ".meta.node-a.tmp"}, false},
                      CrashPoint{{"MetaTempWritten", Op::kRename, ".meta.node-a.tmp"}, false},
                      CrashPoint{{"MetaRenamedBeforeTheDirectorySync", Op::kSyncDir, ""}, true},
                      CrashPoint{{"MetaRenamed", Op::kRemove, ".node-a.kv"}, true}),
    StepName<CrashPoint>);

// A step of a commit that fails, and the errno it fails with.
struct FailedStep {
  Step step;
  int error;
};

void PrintTo(const FailedStep& p, std::ostream* os) { *os << p.step.name; }

class StoreFailedStepTest : public StoreFaultsTest,
                            public ::testing::WithParamInterface<FailedStep> {};

TEST_P(StoreFailedStepTest, ACommitThatFailsHereKeepsTheOldMemoryAndTheNextSaveGoesThrough) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  faults_.FailOn(GetParam().step.op, GetParam().step.suffix, GetParam().error);
  EXPECT_EQ(Save(*s, "a", "newer").code(), ErrorCode::kIo);
  ExpectOldMemory(*s);
  ExpectOldMemory(*Reopen());
  ASSERT_TRUE(Save(*s, "a", "newer").ok());
  EXPECT_EQ(Restored(*s, "a"), "newer");
}

INSTANTIATE_TEST_SUITE_P(
    EveryStep, StoreFailedStepTest,
    ::testing::Values(FailedStep{{"StateFsyncFails", Op::kSyncFile, ".kv.tmp"}, EIO},
                      FailedStep{{"StateChecksumReadFails", Op::kRead, ".kv.tmp"}, EIO},
                      FailedStep{{"StateRenameFails", Op::kRename, ".kv.tmp"}, EIO},
                      FailedStep{{"NoSpaceForTheMetadata", Op::kWriteFile, ".meta.tmp"}, ENOSPC},
                      FailedStep{{"MetadataFsyncFails", Op::kSyncFile, ".meta.tmp"}, EIO},
                      FailedStep{{"MetadataRenameFails", Op::kRename, ".meta.tmp"}, EIO}),
    StepName<FailedStep>);

// Deleting removes the metadata first: a crash leaves the memory whole or
// gone, never a metadata file without its state.
TEST_F(StoreFaultsTest, ACrashBeforeADeletionRemovesAnythingLeavesTheMemoryWhole) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    faults_.CrashAt(Op::kRemove, ".meta");
    (void)s->Remove(Id("a"));
    ASSERT_TRUE(faults_.crashed());
  }
  ExpectOldMemory(*Reopen());
}

TEST_F(StoreFaultsTest, ACrashBetweenRemovingTheMetadataAndTheStateLeavesNothingAfterARestart) {
  {
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    faults_.CrashAt(Op::kRemove, ".kv");
    (void)s->Remove(Id("a"));
    ASSERT_TRUE(faults_.crashed());
    ASSERT_EQ(FilesOf("a").size(), 1u) << "the state file, an orphan";
  }
  auto s = Reopen();
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_TRUE(FilesOf("a").empty());
  EXPECT_EQ(s->quarantined(), 0);
}

TEST_F(StoreFaultsTest, ACrashWhileTheBudgetDeletesAMemoryLeavesNothingOfItAfterARestart) {
  StoreOptions o;
  o.budget_bytes = 4;
  {
    auto s = Open(nullptr, o);
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    faults_.CrashAt(Op::kRemove, ".kv");
    ASSERT_TRUE(Save(*s, "b", "bb").ok());
    EXPECT_EQ(s->EnforceBudget({Id("b")}), std::vector<AgentId>{Id("a")});
    ASSERT_TRUE(faults_.crashed());
  }
  auto s = Reopen();
  EXPECT_FALSE(s->HasMemory(Id("a")));
  EXPECT_TRUE(FilesOf("a").empty());
  EXPECT_EQ(Restored(*s, "b"), "bb");
}

// A deletion is a user's request about their data: it either happened or
// the caller is told it did not.
TEST_F(StoreFaultsTest, ARemovalThatFailsSaysSoForgetsTheAgentAndIsTriedAgain) {
  for (const char* file : {".meta", ".kv"}) {
    SCOPED_TRACE(file);
    auto s = Open();
    ASSERT_TRUE(Save(*s, "a", "old").ok());
    faults_.FailOn(Op::kRemove, file, EACCES);
    Result<bool> removed = s->Remove(Id("a"));
    ASSERT_FALSE(removed.ok());
    EXPECT_EQ(removed.status().code(), ErrorCode::kIo);
    EXPECT_NE(removed.status().message().find("could not delete the memory of agent a"),
              std::string::npos)
        << removed.status().message();
    EXPECT_FALSE(s->HasMemory(Id("a"))) << "never restored by this process";
    EXPECT_FALSE(FilesOf("a").empty());
    EXPECT_EQ(s->RetryDeletes(), 0u);
    EXPECT_TRUE(FilesOf("a").empty()) << "deleted when tried again";
  }
}

TEST_F(StoreFaultsTest, AFailedRemovalIsTriedAgainByTheNextRemovalAndByTheBudget) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  ASSERT_TRUE(Save(*s, "b", "old").ok());
  faults_.FailOn(Op::kRemove, ".meta", EIO, 2);
  EXPECT_FALSE(s->Remove(Id("a")).ok());
  EXPECT_TRUE(s->Remove(Id("b")).ok()) << "a's retry, first, met the second failure";
  EXPECT_FALSE(FilesOf("a").empty());
  EXPECT_TRUE(FilesOf("b").empty());
  s->EnforceBudget();
  EXPECT_TRUE(FilesOf("a").empty());
}

TEST_F(StoreFaultsTest, AnAgentSavedAgainBeforeTheRetryKeepsItsNewMemory) {
  auto s = Open();
  ASSERT_TRUE(Save(*s, "a", "old").ok());
  faults_.FailOn(Op::kRemove, ".meta", EIO);
  ASSERT_FALSE(s->Remove(Id("a")).ok());
  ASSERT_TRUE(Save(*s, "a", "new").ok());
  EXPECT_EQ(s->RetryDeletes(), 0u);
  EXPECT_TRUE(s->HasMemory(Id("a")));
  ExpectMemory(*Reopen(), "new");
}

}  // namespace
}  // namespace agentkv

#include "upstream/upstream_supervisor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <vector>

#include "upstream/supervisor_fakes.h"

namespace agentkv {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeChild;
using testing::FakeWaitClock;
using testing::kBound;

SupervisorOptions Options(int max_restarts = 5) {
  SupervisorOptions o;
  o.url = "http://127.0.0.1:1";
  o.health_interval = seconds(10);
  o.max_restarts = max_restarts;
  o.ready_timeout = seconds(5);
  return o;
}

// A supervisor over a fake child (or none: llama-server not ours), a fake
// clock and a health check that answers while the child runs and `healthy`.
class Supervised {
 public:
  explicit Supervised(SupervisorOptions o = Options(), bool ours = true) {
    auto child = ours ? std::make_unique<FakeChild>() : nullptr;
    auto clock = std::make_unique<FakeWaitClock>();
    child_ = child.get();
    clock_ = clock.get();
    SupervisorEvents events;
    events.lost_kv = [this](const char* why) {
      std::lock_guard<std::mutex> lock(mu_);
      lost_kv_.emplace_back(why);
    };
    events.restarting = [this] { ++restarts_; };
    supervisor_ = std::make_unique<UpstreamSupervisor>(
        o, std::move(child), [this] { return Health(); }, std::move(clock), std::move(events));
  }

  // Started, healthy, watched.
  void Run() {
    ASSERT_TRUE(supervisor_->Start(seconds(60)).ok());
    supervisor_->Watch();
  }
  // Run(), then the child dies; returns once the watch saw it and waits
  // before its first restart.
  void RunUntilItsChildDied() {
    Run();
    child_->Die();
    Step();
  }
  // Fires the wait the watch is in and returns how long it was, once the
  // watch is done with what followed and waits again.
  std::optional<milliseconds> Step() {
    std::optional<milliseconds> fired = clock_->Fire();
    clock_->NextWait();
    return fired;
  }
  std::vector<std::string> lost_kv() {
    std::lock_guard<std::mutex> lock(mu_);
    return lost_kv_;
  }
  // Runs Stop() on another thread; true if it returned within kBound.
  bool StopsPromptly() {
    auto stopped = std::async(std::launch::async, [this] { supervisor_->Stop(seconds(1)); });
    return stopped.wait_for(kBound) == std::future_status::ready;
  }

  UpstreamSupervisor& supervisor() { return *supervisor_; }
  FakeChild& child() { return *child_; }
  FakeWaitClock& clock() { return *clock_; }
  std::atomic<bool> healthy{true};
  std::atomic<int> restarts_{0};

 private:
  Status Health() {
    if (healthy && (child_ == nullptr || child_->running())) return Status::Ok();
    return Status::Error(ErrorCode::kUpstreamDown, "connection refused");
  }

  FakeChild* child_ = nullptr;
  FakeWaitClock* clock_ = nullptr;
  std::mutex mu_;
  std::vector<std::string> lost_kv_;  // guarded by mu_
  std::unique_ptr<UpstreamSupervisor> supervisor_;
};

TEST(UpstreamSupervisor, RestartsAChildThatDiedAndReportsItUpAgain) {
  Supervised s;
  s.Run();
  EXPECT_TRUE(s.supervisor().IsUp());
  const pid_t first = s.supervisor().child_pid();
  s.child().Die();
  EXPECT_EQ(s.Step(), seconds(10)) << "the next health check finds it dead";
  EXPECT_EQ(s.clock().NextWait(), seconds(1)) << "the first restart waits a second";
  EXPECT_FALSE(s.supervisor().IsUp());
  EXPECT_EQ(s.lost_kv(), std::vector<std::string>{"llama-server exited"});
  s.Step();
  EXPECT_TRUE(s.supervisor().WaitUp(kBound));
  EXPECT_EQ(s.child().spawns(), 2);
  EXPECT_EQ(s.restarts_, 1);
  EXPECT_GT(s.supervisor().child_pid(), 0);
  EXPECT_NE(s.supervisor().child_pid(), first);
}

TEST(UpstreamSupervisor, ARequestThatCouldNotReachItHasItCheckedAndRestartedAtOnce) {
  Supervised s;
  s.Run();
  ASSERT_EQ(s.clock().NextWait(), seconds(10)) << "the watch waits its interval";
  s.child().Die();
  s.supervisor().Suspect();
  EXPECT_FALSE(s.supervisor().IsUp()) << "requests wait instead of failing against it";
  // Checked now, not 10 s later: found dead, restarted after the first backoff.
  EXPECT_EQ(s.clock().NextWait(), seconds(1));
  s.Step();
  EXPECT_TRUE(s.supervisor().WaitUp(kBound));
  EXPECT_EQ(s.child().spawns(), 2);
}

TEST(UpstreamSupervisor, ASuspicionTheCheckDispelsOpensTheGateAgainWithoutLosingTheSlots) {
  Supervised s;
  s.Run();
  ASSERT_EQ(s.clock().NextWait(), seconds(10));
  s.supervisor().Suspect();
  EXPECT_TRUE(s.supervisor().WaitUp(kBound));
  EXPECT_EQ(s.clock().NextWait(), seconds(10)) << "back to its interval";
  EXPECT_TRUE(s.lost_kv().empty()) << "llama-server never went away: its slots' KV is there";
  EXPECT_EQ(s.child().spawns(), 1);
}

TEST(UpstreamSupervisor, WaitsTwiceAsLongBeforeEachRestartInARow) {
  Supervised s;
  s.RunUntilItsChildDied();
  s.child().CrashOnStart();
  for (const seconds backoff : {seconds(1), seconds(2), seconds(4), seconds(8), seconds(16)}) {
    EXPECT_EQ(s.Step(), backoff);
  }
  EXPECT_EQ(s.clock().NextWait(), seconds(10)) << "it gave up: health checks only";
  EXPECT_EQ(s.restarts_, 5);
}

TEST(UpstreamSupervisor, GivesUpAfterMaxRestartsInARowAndStaysDown) {
  Supervised s(Options(3));
  s.RunUntilItsChildDied();
  s.child().CrashOnStart();
  for (int i = 0; i < 3; ++i) s.Step();  // the backoffs
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.Step(), seconds(10)) << "health checks only, no restart";
  }
  EXPECT_EQ(s.child().spawns(), 4) << "the first start and three restarts";
  EXPECT_EQ(s.restarts_, 3);
  EXPECT_FALSE(s.supervisor().WaitUp(milliseconds(0)));
  // /readyz says why: given up, and how the child ended the last time.
  const std::string why = s.supervisor().Problem();
  EXPECT_EQ(why.rfind("gave up after 3 restarts in a row; the last: llama-server was killed by "
                      "SIGKILL",
                      0),
            0u)
      << why;
  EXPECT_NE(why.find("during startup"), std::string::npos) << why;
}

TEST(UpstreamSupervisor, SaysHowTheChildEndedUntilItServesAgain) {
  Supervised s;
  s.Run();
  EXPECT_EQ(s.supervisor().Problem(), "");
  s.child().Die();
  s.Step();
  EXPECT_EQ(s.supervisor().Problem().rfind("llama-server was killed by SIGKILL (Killed)", 0), 0u)
      << s.supervisor().Problem();
  s.Step();
  EXPECT_TRUE(s.supervisor().WaitUp(kBound));
  EXPECT_EQ(s.supervisor().Problem(), "") << "up again: nothing to report";
}

TEST(UpstreamSupervisor, CountsDeathsWithinAMinuteAsRestartsInARow) {
  Supervised s(Options(1));
  s.RunUntilItsChildDied();
  s.Step();  // the backoff, then the restart
  ASSERT_TRUE(s.supervisor().WaitUp(kBound));
  s.Step();  // healthy for 10 s only
  s.child().Die();
  s.Step();
  EXPECT_EQ(s.clock().NextWait(), seconds(10)) << "no backoff: it gave up";
  EXPECT_EQ(s.child().spawns(), 2);
}

// The minute counts from the restart: a child that dies half a minute after
// each restart is not healthy for a minute, however long the whole run.
TEST(UpstreamSupervisor, AChildThatDiesHalfAMinuteAfterEachRestartRunsOutOfRestarts) {
  Supervised s(Options(2));
  s.RunUntilItsChildDied();
  for (int round = 0; round < 2; ++round) {
    s.Step();  // the backoff, then the restart
    ASSERT_TRUE(s.supervisor().WaitUp(kBound));
    for (int i = 0; i < 3; ++i) s.Step();  // 30 s of health checks
    s.child().Die();
    s.Step();
  }
  EXPECT_EQ(s.clock().NextWait(), seconds(10)) << "no backoff: it gave up";
  EXPECT_EQ(s.child().spawns(), 3);
}

TEST(UpstreamSupervisor, StartsAFreshRestartBudgetAfterAHealthyMinute) {
  Supervised s(Options(1));
  s.RunUntilItsChildDied();
  s.Step();
  ASSERT_TRUE(s.supervisor().WaitUp(kBound));
  for (int i = 0; i < 7; ++i) s.Step();  // 70 s of health checks
  s.child().Die();
  s.Step();
  EXPECT_EQ(s.Step(), seconds(1)) << "a first restart again";
  EXPECT_TRUE(s.supervisor().WaitUp(kBound));
  EXPECT_EQ(s.child().spawns(), 3);
}

TEST(UpstreamSupervisor, WaitUpWakesWhenTheChildIsHealthyAgain) {
  Supervised s;
  s.RunUntilItsChildDied();
  ASSERT_EQ(s.clock().NextWait(), seconds(1));
  auto waiter = std::async(std::launch::async, [&] { return s.supervisor().WaitUp(kBound); });
  EXPECT_EQ(waiter.wait_for(milliseconds(0)), std::future_status::timeout);
  s.Step();
  EXPECT_TRUE(waiter.get());
}

TEST(UpstreamSupervisor, ALlamaServerNotOursThatComesBackHasLostItsKv) {
  Supervised s(Options(), /*ours=*/false);
  s.Run();
  s.healthy = false;
  s.Step();
  EXPECT_FALSE(s.supervisor().IsUp());
  s.healthy = true;
  s.Step();
  EXPECT_TRUE(s.supervisor().WaitUp(kBound));
  EXPECT_EQ(s.lost_kv(), std::vector<std::string>{"llama-server came back after being down"});
  EXPECT_EQ(s.supervisor().child_pid(), -1);
}

TEST(UpstreamSupervisor, StartFailsWhenTheChildExitsBeforeItServes) {
  Supervised s;
  s.child().CrashOnStart();
  const Status started = s.supervisor().Start(seconds(60));
  EXPECT_EQ(started.code(), ErrorCode::kUpstreamDown);
  EXPECT_EQ(started.message().rfind("llama-server was killed by SIGKILL (Killed)", 0), 0u)
      << started.message();
  EXPECT_NE(started.message().find("during startup"), std::string::npos);
  EXPECT_FALSE(s.supervisor().IsUp());
}

TEST(UpstreamSupervisor, StartGivesUpAtItsTimeoutAndStopsTheChild) {
  Supervised s;
  s.healthy = false;
  auto started = std::async(std::launch::async, [&] { return s.supervisor().Start(seconds(1)); });
  for (int i = 0; i < 10; ++i) ASSERT_EQ(s.clock().Fire(), milliseconds(100));
  const Status status = started.get();
  EXPECT_EQ(status.code(), ErrorCode::kUpstreamDown);
  EXPECT_EQ(status.message(), "llama-server did not become ready");
  EXPECT_EQ(s.child().stops(), 1);
}

TEST(UpstreamSupervisor, StopDuringABackoffEndsPromptlyWithoutARestart) {
  Supervised s;
  s.RunUntilItsChildDied();
  ASSERT_EQ(s.clock().NextWait(), seconds(1));
  EXPECT_TRUE(s.StopsPromptly());
  EXPECT_EQ(s.child().spawns(), 1);
  EXPECT_EQ(s.restarts_, 0);
}

TEST(UpstreamSupervisor, StopWhileARestartedChildLoadsEndsPromptlyAndStopsIt) {
  Supervised s;
  s.RunUntilItsChildDied();
  s.healthy = false;  // the restarted child loads its model
  s.Step();
  ASSERT_EQ(s.clock().NextWait(), milliseconds(100)) << "it polls the new child's health";
  ASSERT_TRUE(s.child().running());
  EXPECT_TRUE(s.StopsPromptly());
  EXPECT_FALSE(s.child().running());
  EXPECT_EQ(s.child().stops(), 1);
}

TEST(UpstreamSupervisor, StopWatchingReleasesWaitersAndKeepsTheChildForTheSaves) {
  Supervised s;
  s.Run();
  s.healthy = false;
  s.Step();
  auto waiter = std::async(std::launch::async, [&] { return s.supervisor().WaitUp(kBound); });
  s.supervisor().StopWatching(std::chrono::steady_clock::now() + kBound);
  EXPECT_FALSE(waiter.get());
  EXPECT_TRUE(s.child().running());
  EXPECT_TRUE(s.StopsPromptly());
  EXPECT_FALSE(s.child().running());
}

TEST(UpstreamSupervisor, StopIsIdempotent) {
  Supervised s;
  s.Run();
  EXPECT_TRUE(s.StopsPromptly());
  EXPECT_TRUE(s.StopsPromptly());
  s.supervisor().StopWatching(std::chrono::steady_clock::now());
  EXPECT_EQ(s.child().stops(), 1);
}

TEST(UpstreamSupervisor, StopBeforeTheWatchBeganStopsTheChildItself) {
  Supervised s;
  ASSERT_TRUE(s.supervisor().Start(seconds(60)).ok());
  EXPECT_TRUE(s.StopsPromptly());
  EXPECT_EQ(s.child().stops(), 1);
  EXPECT_FALSE(s.child().running());
}

}  // namespace
}  // namespace agentkv

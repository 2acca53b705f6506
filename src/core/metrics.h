#pragma once
// Every metric agentkv exports, defined in one place, rendered in the
// Prometheus text format. Names follow Prometheus conventions (agentkv_
// prefix, _total counters, _seconds and _bytes units); no per-agent labels.
// Thread-safe: updates are lock-free or take a short internal lock.

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agentkv/mutex.h"

namespace agentkv {

// A Prometheus histogram with fixed buckets (seconds).
class Histogram {
 public:
  // Request times: 1 ms to 30 s.
  static constexpr std::array<double, 14> kRequestBounds = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  // Gaps between an agent's turns: 1 s to a day.
  static constexpr std::array<double, 13> kGapBounds = {1,   2.5, 5,    10,   30,    60,   120,
                                                        300, 600, 1800, 3600, 14400, 86400};

  // `bounds`: the buckets' upper bounds, increasing.
  template <std::size_t N>
  explicit Histogram(const std::array<double, N>& bounds)
      : bounds_(bounds.begin(), bounds.end()), counts_(N, 0) {}
  Histogram() : Histogram(kRequestBounds) {}

  void Observe(double seconds);
  // Appends the _bucket, _sum and _count series; `labels` like `a="b"` or "".
  void Render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  const std::vector<double> bounds_;
  mutable Mutex mu_;
  std::vector<long long> counts_ GUARDED_BY(mu_);
  long long count_ GUARDED_BY(mu_) = 0;
  double sum_ GUARDED_BY(mu_) = 0;
};

// Gauges read at scrape time, from the parts that own the state.
struct GaugeSnapshot {
  int slots = 0;
  int resident_slots = 0;
  int waiting = 0;
  long long agents_on_disk = 0;
  long long disk_bytes = 0;
  long long disk_budget_bytes = 0;  // 0: no budget
  long long quarantined = 0;        // a counter, kept by the store
  long long quarantine_files = 0;
  long long quarantine_bytes = 0;
  bool upstream_up = false;
  int connections = 0;                // client connections open (the http front's)
  long long connections_refused = 0;  // a counter, kept by the http front
};

class Metrics {
 public:
  std::atomic<long long> restores{0};
  std::atomic<long long> saves{0};
  std::atomic<long long> save_failures{0};
  std::atomic<long long> evictions{0};
  std::atomic<long long> fallbacks{0};  // restores not done or not trusted
  std::atomic<long long> resets{0};     // llama-server lost every slot
  std::atomic<long long> tokens_reused{0};
  std::atomic<long long> tokens_prefilled{0};
  std::atomic<long long> upstream_restarts{0};
  std::atomic<long long> prefix_hits{0};                   // new agents started from a snapshot
  std::atomic<long long> prefix_tokens_reused{0};          // cache_n of those requests
  std::atomic<long long> prefix_snapshots{0};              // snapshots written
  std::atomic<long long> prefix_snapshots_from_memory{0};  // of those, built on an agent's memory
  // A shared directory: resident slots found older than the agent's memory
  // there (another node served it since), restored anew instead.
  std::atomic<long long> superseded{0};
  std::atomic<long long> prefetches{0};         // agents restored ahead of their request
  std::atomic<long long> prefetch_hits{0};      // requests that found their agent so
  std::atomic<long long> prefetch_failures{0};  // restores ahead that failed
  std::atomic<long long> saved_bytes{0};
  std::atomic<long long> saves_deferred{
      0};  // turn-end saves that waited (SaveDeferral, ReturnAware)        // state file bytes
           // written by saves
  std::atomic<long long> restored_bytes{0};  // state file bytes restored
  // Requests for new agents refused past an API key's rate (429).
  std::atomic<long long> new_agents_refused{0};
  Histogram restore_seconds;
  Histogram save_seconds;

  // `route` is a fixed route name, never a raw path; `placement` one of
  // resident, restored, prefix, cold, stateless.
  void CountRequest(const std::string& route, int status);
  void ObserveTtft(const std::string& placement, std::chrono::duration<double> ttft);
  // An agent back after `gap` since its last turn, which ended with
  // `after` (FinishName: stop, tool_calls, length, aborted, unknown).
  void ObserveReturnGap(const std::string& after, std::chrono::duration<double> gap);

  std::string Render(const GaugeSnapshot& gauges) const;

 private:
  mutable Mutex mu_;
  std::map<std::pair<std::string, int>, long long> requests_ GUARDED_BY(mu_);
  std::map<std::string, Histogram> ttft_ GUARDED_BY(mu_);
  std::map<std::string, Histogram> return_gap_ GUARDED_BY(mu_);
};

}  // namespace agentkv

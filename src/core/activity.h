#pragma once
// Recent traffic, for the status page and `agentkv status`: the last
// requests that ran on a slot, per agent how its requests were placed and
// how much of their prompts llama-server reused, and time to first token by
// placement in buckets over the last minutes. Kept in RAM only and bounded
// in every dimension (a restart starts it empty); agents are counted, never
// labelled, in /metrics, so this is the one per-agent record of traffic.
// Thread-safe: every call takes one short internal lock and does no I/O.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/mutex.h"
#include "core/residency.h"

namespace agentkv {

// Placement values, kResident to kStateless, index the arrays below.
inline constexpr std::size_t kPlacementCount = static_cast<std::size_t>(Placement::kStateless) + 1;

// How a turn ended, from llama-server's answer: what an agent does next
// follows from it (a tool call is back in seconds; a stop waits for a
// person, or for nothing).
enum class TurnFinish {
  kUnknown,    // an answer that did not say (an error, a route that does not tell)
  kStop,       // the model ended its answer (OpenAI "stop", Anthropic "end_turn")
  kToolCalls,  // the model called tools: the agent runs them and comes back
  kLength,     // cut at the token limit
  kAborted,    // the client left, or the exchange broke, before the end
};
inline constexpr std::size_t kFinishCount = static_cast<std::size_t>(TurnFinish::kAborted) + 1;
// "unknown", "stop", "tool_calls", "length", "aborted".
const char* FinishName(TurnFinish f);

// What a client said of its agent's next request (the X-Agent-Next header).
struct NextHint {
  enum class Kind { kTool, kDone, kSeconds };
  Kind kind = Kind::kTool;
  double seconds = 0;  // kSeconds: back in about this many seconds
};
// "tool", "done", or the seconds as a number.
std::string NextHintText(const NextHint& hint);

// What a turn's end says of the agent's return (TurnEnd::expect, back_in):
// the client's hint first; else a tool call is back after `tool_gap` (what
// agents of its scope took lately), a stop or a cut at the limit waits for
// a person, and anything else says nothing.
inline constexpr std::chrono::milliseconds kDefaultToolGap{10000};
std::pair<Expect, std::chrono::milliseconds> ExpectationOf(TurnFinish finish,
                                                           const std::optional<NextHint>& next,
                                                           std::chrono::milliseconds tool_gap);

// One request that ran on a slot.
struct RequestRecord {
  std::int64_t at_ms = 0;  // unix ms when it ended; set by Activity::Record
  Tenant agent;            // nobody: a stateless request
  SlotId slot;
  Placement placement = Placement::kCold;
  int status = 0;                      // llama-server's HTTP status; 0 if none arrived
  long long cache_n = -1;              // tokens reused, -1 if llama-server did not say
  long long prompt_n = -1;             // tokens prefilled, likewise
  std::chrono::milliseconds ttft{-1};  // arrival to first answer byte; -1: none
  std::chrono::milliseconds total{0};  // arrival (placement included) to the end
  TurnFinish finish = TurnFinish::kUnknown;
  std::optional<NextHint> next;  // what the request said of the agent's next one
};

// An agent back: the gap from the end of its last turn to this request's
// arrival, and how that turn had ended.
struct Return {
  TurnFinish after = TurnFinish::kUnknown;
  std::int64_t gap_ms = 0;
};

// An agent's requests since agentkv started (or since it was forgotten).
struct AgentActivity {
  long long requests = 0;
  std::array<long long, kPlacementCount> placements{};  // indexed by Placement
  long long tokens_reused = 0;                          // sum of cache_n
  long long tokens_prefilled = 0;                       // sum of prompt_n
  std::int64_t last_ms = 0;                             // unix ms of its last request's end
  TurnFinish last_finish = TurnFinish::kUnknown;        // how its last turn ended
  std::optional<NextHint> next;                         // what its last request said of the next
  std::int64_t last_gap_ms = -1;                        // its last return's gap; -1: none yet
};

// Time to first token of the requests that ended in one bucket of time.
struct TtftBucket {
  struct Cell {
    long long count = 0;
    double sum_ms = 0;
    double max_ms = 0;
  };
  std::int64_t start_ms = 0;  // unix ms
  std::array<Cell, kPlacementCount> by_placement{};
};

struct ActivityLimits {
  std::size_t recent = 200;    // requests kept, newest first
  std::size_t agents = 10000;  // agents whose counts are kept; least recent dropped
  std::chrono::milliseconds bucket{10000};
  std::size_t buckets = 60;  // TTFT buckets kept: 10 minutes at 10 s
};

class Activity {
 public:
  using WallClock = std::function<std::int64_t()>;  // unix ms

  // `now` defaults to the system clock.
  explicit Activity(ActivityLimits limits = {}, WallClock now = nullptr);

  // Stamps `r` with the time now and counts it. Returns the agent's return
  // (the gap since its previous turn ended) if it had one on record.
  std::optional<Return> Record(RequestRecord r);
  // The agent's memory is gone: so are its counts (its requests stay in the
  // recent list until newer ones push them out).
  void Forget(const AgentId& agent);

  // At most `n` of the most recent requests, newest first.
  std::vector<RequestRecord> Recent(std::size_t n) const;
  // Every agent with counts.
  std::unordered_map<AgentId, AgentActivity> Agents() const;
  // One agent's counts; nullopt if it has none (none yet, or dropped).
  std::optional<AgentActivity> Of(const AgentId& agent) const;
  // How long agents of `agent`'s scope (its namespace: its API key's) took
  // lately to come back after a turn that ended with `after`: a moving
  // average of their gaps; nullopt before any.
  std::optional<std::chrono::milliseconds> TypicalGap(const AgentId& agent, TurnFinish after) const;
  // The last limits.buckets buckets, oldest first, ending with the one that
  // holds now; buckets without requests are included, empty.
  std::vector<TtftBucket> Ttft() const;
  std::chrono::milliseconds bucket_width() const { return limits_.bucket; }
  std::int64_t now_ms() const { return now_(); }

 private:
  std::int64_t BucketStart(std::int64_t ms) const;
  void DropLeastRecentAgentLocked() REQUIRES(mu_);

  const ActivityLimits limits_;
  const WallClock now_;
  mutable Mutex mu_;
  std::deque<RequestRecord> recent_ GUARDED_BY(mu_);  // newest first
  std::unordered_map<AgentId, AgentActivity> agents_ GUARDED_BY(mu_);
  // Per scope (one per API key, "" without keys), by TurnFinish: the moving
  // average of gaps in ms, 0 before any.
  std::unordered_map<std::string, std::array<double, kFinishCount>> typical_gap_ms_ GUARDED_BY(mu_);
  std::vector<TtftBucket> ring_ GUARDED_BY(mu_);  // by BucketStart / bucket % buckets
};

}  // namespace agentkv

#include "core/activity.h"

#include <algorithm>

namespace agentkv {

namespace {

std::int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t IndexOf(Placement p) { return static_cast<std::size_t>(p); }
std::size_t IndexOf(TurnFinish f) { return static_cast<std::size_t>(f); }

}  // namespace

const char* FinishName(TurnFinish f) {
  switch (f) {
    case TurnFinish::kStop:
      return "stop";
    case TurnFinish::kToolCalls:
      return "tool_calls";
    case TurnFinish::kLength:
      return "length";
    case TurnFinish::kAborted:
      return "aborted";
    case TurnFinish::kUnknown:
      break;
  }
  return "unknown";
}

std::string NextHintText(const NextHint& hint) {
  switch (hint.kind) {
    case NextHint::Kind::kTool:
      return "tool";
    case NextHint::Kind::kDone:
      return "done";
    case NextHint::Kind::kSeconds:
      break;
  }
  std::string text = std::to_string(hint.seconds);
  text.erase(text.find_last_not_of('0') + 1);  // "2.500000" -> "2.5", "3.000000" -> "3."
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

std::pair<Expect, std::chrono::milliseconds> ExpectationOf(TurnFinish finish,
                                                           const std::optional<NextHint>& next,
                                                           std::chrono::milliseconds tool_gap) {
  using std::chrono::milliseconds;
  if (next) {
    switch (next->kind) {
      case NextHint::Kind::kDone:
        return {Expect::kDone, milliseconds(0)};
      case NextHint::Kind::kSeconds:
        return {Expect::kReturning, milliseconds(static_cast<long long>(next->seconds * 1000))};
      case NextHint::Kind::kTool:
        return {Expect::kReturning, tool_gap};
    }
  }
  switch (finish) {
    case TurnFinish::kToolCalls:
      return {Expect::kReturning, tool_gap};
    case TurnFinish::kStop:
    case TurnFinish::kLength:
      return {Expect::kPerson, milliseconds(0)};
    case TurnFinish::kAborted:
    case TurnFinish::kUnknown:
      break;
  }
  return {Expect::kUnknown, milliseconds(0)};
}

Activity::Activity(ActivityLimits limits, WallClock now)
    : limits_(limits), now_(now ? std::move(now) : WallClock(&SystemNowMs)) {
  MutexLock lock(mu_);
  ring_.resize(std::max<std::size_t>(limits_.buckets, 1));
  for (TtftBucket& b : ring_) b.start_ms = -1;  // no bucket starts there
}

std::int64_t Activity::BucketStart(std::int64_t ms) const {
  const std::int64_t width = std::max<std::int64_t>(limits_.bucket.count(), 1);
  return ms - ((ms % width) + width) % width;
}

std::optional<Return> Activity::Record(RequestRecord r) {
  r.at_ms = now_();
  std::optional<Return> back;
  MutexLock lock(mu_);
  if (r.agent) {
    AgentActivity& a = agents_[*r.agent];
    if (a.requests > 0) {
      const std::int64_t arrived = r.at_ms - r.total.count();
      back = Return{a.last_finish, std::max<std::int64_t>(arrived - a.last_ms, 0)};
      a.last_gap_ms = back->gap_ms;
      double& typical = typical_gap_ms_[std::string(r.agent->ns())][IndexOf(back->after)];
      const auto gap = static_cast<double>(back->gap_ms);
      typical = typical == 0 ? gap : 0.8 * typical + 0.2 * gap;
    }
    ++a.requests;
    ++a.placements[IndexOf(r.placement)];
    a.tokens_reused += std::max(r.cache_n, 0LL);
    a.tokens_prefilled += std::max(r.prompt_n, 0LL);
    a.last_ms = r.at_ms;
    a.last_finish = r.finish;
    a.next = r.next;
    if (agents_.size() > limits_.agents) DropLeastRecentAgentLocked();
  }
  if (r.ttft.count() >= 0) {
    const std::int64_t start = BucketStart(r.at_ms);
    const std::int64_t width = std::max<std::int64_t>(limits_.bucket.count(), 1);
    TtftBucket& b = ring_[static_cast<std::size_t>(start / width) % ring_.size()];
    if (b.start_ms != start) b = TtftBucket{start, {}};
    TtftBucket::Cell& c = b.by_placement[IndexOf(r.placement)];
    const double ms = static_cast<double>(r.ttft.count());
    ++c.count;
    c.sum_ms += ms;
    c.max_ms = std::max(c.max_ms, ms);
  }
  recent_.push_front(std::move(r));
  while (recent_.size() > limits_.recent) recent_.pop_back();
  return back;
}

// O(agents), and only when a new agent arrives past the limit.
void Activity::DropLeastRecentAgentLocked() {
  auto oldest = std::min_element(agents_.begin(), agents_.end(), [](const auto& a, const auto& b) {
    return a.second.last_ms < b.second.last_ms;
  });
  if (oldest != agents_.end()) agents_.erase(oldest);
}

void Activity::Forget(const AgentId& agent) {
  MutexLock lock(mu_);
  agents_.erase(agent);
}

std::vector<RequestRecord> Activity::Recent(std::size_t n) const {
  MutexLock lock(mu_);
  const std::size_t count = std::min(n, recent_.size());
  return {recent_.begin(), recent_.begin() + static_cast<std::ptrdiff_t>(count)};
}

std::unordered_map<AgentId, AgentActivity> Activity::Agents() const {
  MutexLock lock(mu_);
  return agents_;
}

std::optional<AgentActivity> Activity::Of(const AgentId& agent) const {
  MutexLock lock(mu_);
  auto it = agents_.find(agent);
  if (it == agents_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::chrono::milliseconds> Activity::TypicalGap(const AgentId& agent,
                                                              TurnFinish after) const {
  MutexLock lock(mu_);
  auto it = typical_gap_ms_.find(std::string(agent.ns()));
  if (it == typical_gap_ms_.end() || it->second[IndexOf(after)] == 0) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(it->second[IndexOf(after)]));
}

std::vector<TtftBucket> Activity::Ttft() const {
  const std::int64_t width = std::max<std::int64_t>(limits_.bucket.count(), 1);
  const std::int64_t last = BucketStart(now_());
  MutexLock lock(mu_);
  std::vector<TtftBucket> out;
  out.reserve(ring_.size());
  for (std::size_t i = ring_.size(); i-- > 0;) {
    const std::int64_t start = last - static_cast<std::int64_t>(i) * width;
    const TtftBucket& b = ring_[static_cast<std::size_t>(start / width) % ring_.size()];
    out.push_back(b.start_ms == start ? b : TtftBucket{start, {}});
  }
  return out;
}

}  // namespace agentkv

#include "core/away_list.h"

#include <algorithm>

namespace agentkv {

void AwayList::Note(const AgentId& agent, TimePoint back) {
  Forget(agent);
  if (static_cast<int>(away_.size()) >= kMaxAway) {
    // Full: the one expected latest makes room, if it is later than this one.
    auto latest = std::max_element(away_.begin(), away_.end(), [](const auto& a, const auto& b) {
      return a.expected_back < b.expected_back;
    });
    if (latest->expected_back <= back) return;
    away_.erase(latest);
  }
  away_.push_back({agent, back});
}

void AwayList::Forget(const AgentId& agent) {
  away_.erase(std::remove_if(away_.begin(), away_.end(),
                             [&](const AwayAgent& a) { return a.agent == agent; }),
              away_.end());
}

std::vector<AwayAgent> AwayList::ByReturn(TimePoint now,
                                          const std::function<bool(const AgentId&)>& resident) {
  away_.erase(std::remove_if(away_.begin(), away_.end(),
                             [&](const AwayAgent& a) {
                               return now > a.expected_back + kOverdue || resident(a.agent);
                             }),
              away_.end());
  std::vector<AwayAgent> out = away_;
  std::stable_sort(out.begin(), out.end(), [](const AwayAgent& a, const AwayAgent& b) {
    return a.expected_back < b.expected_back;
  });
  return out;
}

bool AwayList::Advise(const AgentId& agent) {
  for (AwayAgent& a : away_) {
    if (a.agent == agent && !a.advised) {
      a.advised = true;
      return true;
    }
  }
  return false;
}

}  // namespace agentkv

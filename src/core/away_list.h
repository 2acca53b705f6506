#pragma once
// The agents evicted while expected back (after a tool call, or at a time
// their client gave), soonest first: the candidates for a restore ahead of
// their request. Bounded: at most kMaxAway, the one expected latest making
// room; an agent overdue by kOverdue drops out. Not thread-safe (Residency's).

#include <functional>
#include <optional>
#include <vector>

#include "agentkv/agent_id.h"
#include "core/slot_types.h"

namespace agentkv {

// An evicted agent expected back.
struct AwayAgent {
  AgentId agent;
  TimePoint expected_back;
  bool advised = false;  // NextAway has named it
};

class AwayList {
 public:
  static constexpr int kMaxAway = 256;

  // Remembers `agent`, expected back at `back` (replacing what was noted of
  // it), unless the list is full of agents expected sooner.
  void Note(const AgentId& agent, TimePoint back);
  void Forget(const AgentId& agent);
  // Drops the agents overdue at `now` and those `resident` says are back in
  // a slot; returns the others, the one expected back soonest first.
  std::vector<AwayAgent> ByReturn(TimePoint now,
                                  const std::function<bool(const AgentId&)>& resident);
  // Marks `agent` as named ahead (for its file's pages); false if it was
  // already, or is not on the list.
  bool Advise(const AgentId& agent);

 private:
  std::vector<AwayAgent> away_;
};

}  // namespace agentkv

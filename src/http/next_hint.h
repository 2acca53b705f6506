#pragma once
// The X-Agent-Next request header: what a framework says of its agent's
// next request. "tool" (it runs a tool and comes back), "done" (it waits
// for a person, or is finished), or the seconds until it expects to come
// back ("2.5"). agentkv records it with the turn (core/activity.h); without
// it, how the turn ended (TurnFinish) says the same less surely.

#include <optional>
#include <string>

#include "agentkv/status.h"
#include "core/activity.h"

namespace agentkv {

inline constexpr char kNextHeader[] = "X-Agent-Next";
inline constexpr double kMaxNextSeconds = 7 * 24 * 3600;

// nullopt for an absent (empty) header; kInvalidArgument, naming the
// accepted values, for anything else than the three forms (spaces around
// are ignored; seconds from 0 to kMaxNextSeconds, digits with at most one
// '.').
Result<std::optional<NextHint>> ParseNextHint(const std::string& value);

}  // namespace agentkv

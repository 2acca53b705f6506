#pragma once
// Sizing llama-server's slots from a RAM budget for their KV. The cost of
// a slot is measured, not assumed: a short llama-server run on the model,
// with the same cache settings, saves a slot at two lengths; the slot file
// holds what the slot's memory holds, so the two sizes give the bytes per
// token (attention KV) and per slot (recurrent state) of this model.

#include <cstdint>

#include "agentkv/status.h"
#include "upstream/llama_process.h"

namespace agentkv {

struct KvCost {
  double bytes_per_token = 0;  // grows with the context
  double bytes_per_slot = 0;   // does not (recurrent state); >= 0
};

struct SlotPlan {
  int slots = 0;
  long long ctx_per_slot = 0;
};

// With `ctx_per_slot` > 0: as many slots of that context as `budget` holds.
// Otherwise: `slots` slots with the largest context `budget` holds. Returns
// kInvalidArgument, saying what would fit, if not one slot of at least
// kMinContext tokens does. Pure.
inline constexpr long long kMinContext = 256;
Result<SlotPlan> PlanSlots(const KvCost& cost, std::uint64_t budget, int slots,
                           long long ctx_per_slot);

// Starts llama-server as `base` says, on one slot, fills and saves it at two
// lengths, stops it. Blocks for a model load and a short prefill. Returns
// kUpstream* or kIo if that fails.
Result<KvCost> MeasureKvCost(LlamaProcessOptions base);

}  // namespace agentkv

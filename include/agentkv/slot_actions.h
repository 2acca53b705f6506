#pragma once
// What Placer needs of llama-server's slots: save, restore, erase. Upstream
// implements it over HTTP; tests use an in-memory fake. Implementations are
// thread-safe and block on I/O: call them without holding a lock.

#include <string>

#include "agentkv/agent_id.h"
#include "agentkv/status.h"

namespace agentkv {

struct SlotActionResult {
  long long n_tokens = 0;  // tokens saved or restored
  long long n_bytes = 0;   // bytes written or read
  double ms = 0;           // llama-server's own timing
};

class SlotActions {
 public:
  virtual ~SlotActions() = default;
  // Each returns kUpstreamDown if llama-server is unreachable or dropped the
  // connection, kUpstreamTimeout if it did not answer in time, and
  // kUpstreamError with its message if it answered with an error.
  virtual Result<SlotActionResult> SaveSlot(SlotId slot, const std::string& filename) = 0;
  virtual Result<SlotActionResult> RestoreSlot(SlotId slot, const std::string& filename) = 0;
  virtual Status EraseSlot(SlotId slot) = 0;
};

}  // namespace agentkv

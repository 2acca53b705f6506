#pragma once
// A request's hold on the slot Placer::Place gave it, with how its tenant's
// KV got there. Released (SlotPool::Release) when destroyed or when the
// request ends (Placer::Finish).

#include <utility>

#include "agentkv/agent_id.h"
#include "core/slot_pool.h"
#include "core/slot_types.h"

namespace agentkv {

// One request's hold on a slot; released when destroyed. Move-only.
class Lease {
 public:
  Lease(SlotPool* pool, SlotId slot, Tenant tenant, Placement placement, long long restored_tokens)
      : pool_(pool),
        slot_(slot),
        tenant_(std::move(tenant)),
        placement_(placement),
        restored_tokens_(restored_tokens) {}
  Lease(Lease&& other) noexcept { *this = std::move(other); }
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // Not finished: the KV may have changed, by how much is unknown.
  ~Lease() { Release(TurnEnd{}); }

  void Release(const TurnEnd& end);
  SlotId slot() const { return slot_; }
  const Tenant& tenant() const { return tenant_; }
  Placement placement() const { return placement_; }
  long long restored_tokens() const { return restored_tokens_; }

 private:
  SlotPool* pool_ = nullptr;
  SlotId slot_;
  Tenant tenant_;
  Placement placement_ = Placement::kCold;
  long long restored_tokens_ = 0;
};

}  // namespace agentkv

#pragma once
// Gets a tenant's KV into a slot: asks the SlotPool for a plan, runs its
// upstream steps (save the evicted agent, restore or erase) without holding
// any lock, and reports the outcome back. Thread-safe.

#include <utility>

#include "agentkv/slot_pool.h"
#include "agentkv/store.h"
#include "agentkv/upstream.h"

namespace agentkv {

// One request's hold on a slot; released when destroyed. Move-only.
class Lease {
 public:
  Lease(SlotPool* pool, SlotId slot, Tenant tenant, Placement placement)
      : pool_(pool), slot_(slot), tenant_(std::move(tenant)), placement_(placement) {}
  Lease(Lease&& other) noexcept { *this = std::move(other); }
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { Release(); }

  void Release();
  SlotId slot() const { return slot_; }
  const Tenant& tenant() const { return tenant_; }
  Placement placement() const { return placement_; }

 private:
  SlotPool* pool_ = nullptr;
  SlotId slot_;
  Tenant tenant_;
  Placement placement_ = Placement::kCold;
};

class Placer {
 public:
  Placer(SlotPool& pool, Upstream& upstream, Store& store)
      : pool_(pool), upstream_(upstream), store_(store) {}

  // Blocks until `tenant` holds a slot with its KV in place (restored, or
  // erased for a cold start). Returns kBusy past the queue bounds, and
  // kUpstream* if llama-server left the slot in a state the tenant must not
  // use. A failed save or restore is not an error: the request falls back to
  // a normal prefill.
  Result<Lease> Place(const Tenant& tenant);

 private:
  // Runs the plan's upstream steps; a failed erase's cause goes to *erase_error.
  SwitchOutcome Run(const Plan& plan, Status* erase_error);

  SlotPool& pool_;
  Upstream& upstream_;
  Store& store_;
};

}  // namespace agentkv

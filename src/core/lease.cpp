#include "core/lease.h"

namespace agentkv {

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release(TurnEnd{});
    pool_ = std::exchange(other.pool_, nullptr);
    slot_ = other.slot_;
    tenant_ = std::move(other.tenant_);
    placement_ = other.placement_;
    restored_tokens_ = other.restored_tokens_;
  }
  return *this;
}

void Lease::Release(const TurnEnd& end) {
  if (pool_) std::exchange(pool_, nullptr)->Release(slot_, end);
}

}  // namespace agentkv

#include "core/slot_types.h"

namespace agentkv {

const char* PlacementName(Placement p) {
  switch (p) {
    case Placement::kResident:
      return "resident";
    case Placement::kRestored:
      return "restored";
    case Placement::kPrefix:
      return "prefix";
    case Placement::kCold:
      return "cold";
    case Placement::kStateless:
      return "stateless";
  }
  return "unknown";
}

}  // namespace agentkv

#pragma once
// An agent's metadata file (H.meta), as JSON text. Pure functions.

#include <string>
#include <variant>

#include "store/store_index.h"

namespace agentkv {

std::string EncodeMeta(const StoredMemory& e);

// The memory the text describes, or why it cannot be one: unreadable, of
// another agent than `hash` names, or with a field of the wrong type. Does
// not check the state file it names.
std::variant<StoredMemory, std::string> DecodeMeta(const std::string& text,
                                                   const std::string& hash);

}  // namespace agentkv

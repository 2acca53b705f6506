#pragma once
// An agent's metadata file (H.meta), as JSON text. Pure functions.

#include <string>
#include <variant>

#include "store/store_index.h"

namespace agentkv {

// The metadata's format. 1: every file agentkv wrote until the field
// existed (it is absent from them) and since. A change that older agentkv
// versions would misread raises it; they then refuse the directory rather
// than read, quarantine or delete what they cannot understand.
inline constexpr int kMetaFormat = 1;

std::string EncodeMeta(const StoredMemory& e);

// The format the text declares: 1 when it declares none (or is not
// metadata at all, which DecodeMeta then says).
int MetaFormatOf(const std::string& text);

// The memory the text describes, or why it cannot be one: unreadable, of
// another agent than `hash` names, with a field of the wrong type or out of
// bounds (a count no llama-server context holds, a time after the year
// 10000), or naming a state file that is not the agent's own in the memory
// directory itself (`H.<generation>[.<node>].kv`). Does not read that file.
std::variant<StoredMemory, std::string> DecodeMeta(const std::string& text,
                                                   const std::string& hash);

}  // namespace agentkv

#pragma once
// SHA-256 of a byte string (OpenSSL's libcrypto), as 64 lowercase hex digits. Used to derive file
// names from agent ids: a collision would mix two agents' memories, so a
// cryptographic hash, not std::hash. Pure function, thread-safe.

#include <string>
#include <string_view>

namespace agentkv {

std::string Sha256Hex(std::string_view data);

}  // namespace agentkv

#include "store/fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "store/checksum.h"
#include "store/sha256.h"

namespace agentkv {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Fingerprint::Digest() const {
  const json j = {{"model", model},
                  {"n_ctx_slot", n_ctx_slot},
                  {"cache_type_k", cache_type_k},
                  {"cache_type_v", cache_type_v},
                  {"build", build},
                  {"swa_full", swa_full}};
  return Sha256Hex(j.dump()).substr(0, 32);
}

Result<std::string> ModelIdentity(const fs::path& model) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(model, ec);
  if (ec) return Status::Error(ErrorCode::kIo, "cannot stat model " + model.string());
  std::ifstream in(model, std::ios::binary);
  constexpr std::uintmax_t kChunk = 1 << 20;
  std::string head(static_cast<size_t>(std::min(size, kChunk)), '\0');
  std::string tail = head;
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  in.seekg(static_cast<std::streamoff>(size - tail.size()));
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  if (!in) return Status::Error(ErrorCode::kIo, "cannot read model " + model.string());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%ju:%016llx:%016llx", size,
                static_cast<unsigned long long>(Xxh64(head.data(), head.size())),
                static_cast<unsigned long long>(Xxh64(tail.data(), tail.size())));
  return std::string(buf);
}

}  // namespace agentkv

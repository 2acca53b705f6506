#include "store/file_names.h"

#include <algorithm>
#include <cstring>

namespace agentkv {

namespace {

constexpr const char* kMetaSuffix = ".meta";
constexpr const char* kStateSuffix = ".kv";
constexpr const char* kTempSuffix = ".tmp";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsHash(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsDigits(const std::string& s) {
  return !s.empty() && s.size() < 19 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool IsNodeName(const std::string& s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

FileNameParts ParseFileName(const std::string& name) {
  using Kind = FileNameParts::Kind;
  std::string base = name;
  const bool temp = EndsWith(base, kTempSuffix);
  if (temp) base.resize(base.size() - std::strlen(kTempSuffix));
  if (base.size() < 65 || !IsHash(base.substr(0, 64)) || base[64] != '.') return {};
  const std::string rest = base.substr(65);
  FileNameParts parts;
  if (rest == "meta") {
    parts.kind = Kind::kMeta;
  } else if (rest.rfind("meta.", 0) == 0 && temp && IsNodeName(rest.substr(5))) {
    parts = {Kind::kMeta, rest.substr(5)};  // only ever a temporary
  } else if (EndsWith(rest, kStateSuffix)) {
    const std::string stem = rest.substr(0, rest.size() - std::strlen(kStateSuffix));
    const std::size_t dot = stem.find('.');
    if (IsDigits(stem.substr(0, dot)) &&
        (dot == std::string::npos || IsNodeName(stem.substr(dot + 1)))) {
      parts = {Kind::kState, dot == std::string::npos ? "" : stem.substr(dot + 1)};
    }
  }
  if (parts.kind != Kind::kForeign && temp) parts.kind = Kind::kTemp;
  return parts;
}

bool NamesStateOf(const std::string& state_file, const std::string& hash, long long generation) {
  const std::string head = hash + "." + std::to_string(generation) + ".";
  return state_file.rfind(head, 0) == 0 &&
         ParseFileName(state_file).kind == FileNameParts::Kind::kState;
}

std::string MetaFileName(const std::string& hash) { return hash + kMetaSuffix; }

std::string StateFileName(const std::string& hash, long long generation, const std::string& node) {
  return hash + "." + std::to_string(generation) + (node.empty() ? "" : "." + node) + kStateSuffix;
}

std::string MetaTempFileName(const std::string& hash, const std::string& node) {
  return MetaFileName(hash) + (node.empty() ? "" : "." + node) + kTempSuffix;
}

std::string TempFileName(const std::string& name) { return name + kTempSuffix; }

}  // namespace agentkv

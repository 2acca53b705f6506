#include "agentkv/llama_fields.h"

#include <nlohmann/json.hpp>

namespace agentkv {

using nlohmann::json;

namespace {

bool AsksForSeveral(const json& body, const char* field) {
  auto it = body.find(field);
  return it != body.end() && it->is_number() && it->get<double>() > 1;
}

// 0 unless obj[key] is a number: an odd upstream answer must not throw.
template <typename T>
T NumberOr0(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number() ? it->get<T>() : T{};
}

std::optional<Timings> TimingsFrom(const json& j) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find("timings");
  if (it == j.end() || !it->is_object()) return std::nullopt;
  Timings t;
  t.cache_n = NumberOr0<long long>(*it, "cache_n");
  t.prompt_n = NumberOr0<long long>(*it, "prompt_n");
  t.predicted_n = NumberOr0<long long>(*it, "predicted_n");
  t.prompt_ms = NumberOr0<double>(*it, "prompt_ms");
  return t;
}

}  // namespace

Status CheckInferenceBody(const json& body) {
  if (!body.is_object()) {
    return Status::Error(ErrorCode::kInvalidArgument, "request body must be a JSON object");
  }
  if (AsksForSeveral(body, "n") || AsksForSeveral(body, "n_cmpl")) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "n > 1 is not supported through agentkv: each "
                         "completion would occupy another llama-server slot");
  }
  return Status::Ok();
}

void PinToSlot(json& body, SlotId slot) {
  body["id_slot"] = slot.value;
  body["cache_prompt"] = true;
}

void TimingsScanner::Feed(const char* data, std::size_t size) {
  if (!saw_event_ && body_.size() + size <= kMaxBody) body_.append(data, size);
  pending_.append(data, size);
  std::size_t start = 0;
  for (std::size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
    ScanLine(pending_.substr(start, nl - start));
  }
  pending_.erase(0, start);
}

void TimingsScanner::ScanLine(const std::string& line) {
  if (line.rfind("data: ", 0) != 0) return;
  saw_event_ = true;
  body_.clear();
  if (line.find("\"timings\"") == std::string::npos) return;
  if (auto t = TimingsFrom(json::parse(line.substr(6), nullptr, false))) timings_ = t;
}

std::optional<Timings> TimingsScanner::Finish() {
  if (!saw_event_ && !body_.empty()) {
    timings_ = TimingsFrom(json::parse(body_, nullptr, false));
  }
  return timings_;
}

}  // namespace agentkv

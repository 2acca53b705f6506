#include "http/llama_fields.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "store/checksum.h"

namespace agentkv {

using nlohmann::json;

namespace {

// llama-server reads n_cmpl (alias n) as an int32_t through nlohmann's
// get<int32_t>, which truncates a wider integer: -4294967294 is read as 2.
// So a number must lie in [INT32_MIN, 1], not merely be at most 1.
bool AsksForSeveral(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_number()) return false;
  const double n = it->get<double>();
  return n > 1 || n < static_cast<double>(std::numeric_limits<std::int32_t>::min());
}

// 0 unless obj[key] is a number of T's kind: an odd upstream answer must not
// throw, and a float such as 1e300 is not converted to an integer (undefined).
template <typename T>
T NumberOr0(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return T{};
  const bool fits = std::is_integral_v<T> ? it->is_number_integer() : it->is_number();
  return fits ? it->get<T>() : T{};
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

// The finish reason an answer (or one of its events) gives, if any.
std::optional<TurnFinish> FinishFrom(const json& j) {
  if (!j.is_object()) return std::nullopt;
  auto text = [](const json& obj, const char* key) -> std::string {
    if (!obj.is_object()) return "";
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
  };
  std::string reason;
  if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty()) {
    reason = text((*c)[0], "finish_reason");
  }
  if (reason.empty()) reason = text(j, "stop_reason");
  if (reason.empty()) {
    if (auto d = j.find("delta"); d != j.end()) reason = text(*d, "stop_reason");
  }
  if (reason.empty()) reason = text(j, "stop_type");
  if (reason == "stop" || reason == "end_turn" || reason == "stop_sequence" || reason == "eos" ||
      reason == "word") {
    return TurnFinish::kStop;
  }
  if (reason == "tool_calls" || reason == "function_call" || reason == "tool_use") {
    return TurnFinish::kToolCalls;
  }
  if (reason == "length" || reason == "max_tokens" || reason == "limit") {
    return TurnFinish::kLength;
  }
  return std::nullopt;  // none yet (null on every token), or "none"
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

namespace {

// The head of a prompt given as text, token ids, or a list of either.
std::optional<std::string> HeadOf(const json& p) {
  if (p.is_string()) {
    const std::string& text = p.get_ref<const std::string&>();
    if (text.size() < kPromptKeyChars) return std::nullopt;
    return "text:" + text.substr(0, kPromptKeyChars);
  }
  if (!p.is_array() || p.empty()) return std::nullopt;
  if (p[0].is_number_integer()) {
    if (p.size() < kPromptKeyTokens) return std::nullopt;
    return "tokens:" + json(std::vector<json>(p.begin(), p.begin() + kPromptKeyTokens)).dump();
  }
  return "item:" + p[0].dump();  // a message or a content part
}

}  // namespace

namespace {

// A message's or an input item's content: text, or a list of typed parts.
bool PartsCarryMedia(const json& content) {
  if (!content.is_array()) return false;
  for (const json& part : content) {
    if (!part.is_object()) continue;
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) continue;
    const std::string& t = type->get_ref<const std::string&>();
    if (t != "text" && t != "input_text" && t != "output_text") return true;
  }
  return false;
}

}  // namespace

bool CarriesMedia(const json& body) {
  if (!body.is_object()) return false;
  if (body.contains("multimodal_data")) return true;
  for (const char* list : {"messages", "input"}) {
    auto items = body.find(list);
    if (items == body.end() || !items->is_array()) continue;
    for (const json& item : *items) {
      if (PartsCarryMedia(item) ||
          (item.is_object() && item.contains("content") && PartsCarryMedia(item["content"]))) {
        return true;
      }
    }
  }
  return false;
}

std::uint64_t PromptKeyOf(const json& body) {
  if (!body.is_object()) return 0;
  std::optional<std::string> head;
  if (auto m = body.find("messages"); m != body.end() && m->is_array() && !m->empty()) {
    head = "message:" + (*m)[0].dump();
  } else if (auto p = body.find("prompt"); p != body.end()) {
    head = HeadOf(*p);
  } else if (auto i = body.find("input"); i != body.end()) {
    head = HeadOf(*i);
  }
  if (!head) return 0;
  const std::uint64_t key = Xxh64(head->data(), head->size());
  return key == 0 ? 1 : key;
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
  // Only the events that can carry what is looked for are parsed: a token's
  // event has "finish_reason":null.
  const bool timings = line.find("\"timings\"") != std::string::npos;
  const bool finish = line.find("\"finish_reason\":\"") != std::string::npos ||
                      line.find("\"stop_reason\":\"") != std::string::npos ||
                      line.find("\"stop_type\":\"") != std::string::npos;
  if (!timings && !finish) return;
  const json event = json::parse(line.substr(6), nullptr, false);
  if (auto t = TimingsFrom(event)) timings_ = t;
  if (auto f = FinishFrom(event)) finish_ = *f;
}

std::optional<Timings> TimingsScanner::Finish() {
  if (!saw_event_ && !body_.empty()) {
    const json answer = json::parse(body_, nullptr, false);
    timings_ = TimingsFrom(answer);
    if (auto f = FinishFrom(answer)) finish_ = *f;
  }
  if (timings_) timings_->finish = finish_;
  return timings_;
}

}  // namespace agentkv

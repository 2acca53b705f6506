#pragma once
// llama-server's request and response fields, in one place (with upstream.h).

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "agentkv/agent_id.h"
#include "agentkv/status.h"
#include "core/activity.h"

namespace agentkv {

// Returns kInvalidArgument for inference requests agentkv cannot place on one
// slot: a body that is not an object, or n or n_cmpl > 1 (one slot per
// completion) or below INT32_MIN (llama-server would read it truncated).
Status CheckInferenceBody(const nlohmann::json& body);

// Pins an inference request body to `slot` with prompt caching on.
void PinToSlot(nlohmann::json& body, SlotId slot);

// A key of the request's leading content, 0 if it has none agentkv knows:
// the first message of `messages` (chat), the first kPromptKeyChars
// characters or kPromptKeyTokens token ids of `prompt`, or the first item or
// characters of `input` (responses). Equal keys mean the two requests start
// with the same tokens; a prompt shorter than the head has no key.
std::uint64_t PromptKeyOf(const nlohmann::json& body);
inline constexpr std::size_t kPromptKeyChars = 64;
inline constexpr std::size_t kPromptKeyTokens = 16;

// True if the request carries images or audio (a content part of another
// type than text, or /completion's multimodal_data). llama-server cannot save
// a slot that holds media: such requests are served stateless.
bool CarriesMedia(const nlohmann::json& body);

// What llama-server reports about a completed request.
struct Timings {
  long long cache_n = 0;      // prompt tokens reused from the slot's KV
  long long prompt_n = 0;     // prompt tokens computed (prefilled)
  long long predicted_n = 0;  // tokens generated
  double prompt_ms = 0;
  // How the answer ended, where it said: choices[0].finish_reason (OpenAI),
  // stop_reason (Anthropic's messages), stop_type (llama-server's
  // /completion). The responses API is not read: kUnknown.
  TurnFinish finish = TurnFinish::kUnknown;
};

// Finds the timings in a response fed to it piece by piece: the last SSE
// `data:` event that carries them, or else the whole JSON body.
// Not thread-safe; one per response.
class TimingsScanner {
 public:
  void Feed(const char* data, std::size_t size);
  // Call once the response is complete.
  std::optional<Timings> Finish();

 private:
  void ScanLine(const std::string& line);

  static constexpr std::size_t kMaxBody = 16 << 20;
  std::string pending_;  // bytes after the last newline
  std::string body_;     // the whole response, while it looks like plain JSON
  bool saw_event_ = false;
  std::optional<Timings> timings_;
  TurnFinish finish_ = TurnFinish::kUnknown;
};

}  // namespace agentkv

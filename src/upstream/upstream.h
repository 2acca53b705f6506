#pragma once
// The client side of llama-server. Together with llama_fields.h, the only
// code that knows llama-server's routes and field names.
// Safe for concurrent use: every call opens its own connection. Every call
// blocks on network I/O; call it without holding a lock.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agentkv/agent_id.h"
#include "agentkv/mutex.h"
#include "agentkv/slot_actions.h"
#include "agentkv/status.h"

namespace agentkv {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct UpstreamOptions {
  std::string base_url = "http://127.0.0.1:8080";  // scheme://host:port
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds read_timeout{600};  // a long prefill sends nothing
  std::string api_key;                     // llama-server's --api-key, if it has one
};

struct ForwardRequest {
  std::string method;
  std::string path;  // with query string
  HeaderList headers;
  std::string body;
  std::string content_type;
};

// Receives a forwarded response as it arrives, on the calling thread.
// Returning false from either callback cancels the exchange.
struct ResponseSink {
  std::function<bool(int status, const HeaderList& headers)> on_headers;
  std::function<bool(const char* data, size_t size)> on_body;
};

// Lets another thread abort a Forward in flight (closing its connection, so
// llama-server cancels the task). Thread-safe.
class CancelToken {
 public:
  void Cancel();
  bool cancelled() const;
  // Runs `abort` now if already cancelled, else on Cancel(); Detach() drops it.
  void Attach(std::function<void()> abort);
  void Detach();

 private:
  mutable Mutex mu_;
  bool cancelled_ GUARDED_BY(mu_) = false;
  std::function<void()> abort_ GUARDED_BY(mu_);
};

class Upstream : public SlotActions {
 public:
  explicit Upstream(UpstreamOptions options);

  const std::string& base_url() const { return options_.base_url; }

  // Slot actions (see SlotActions). `slot` must be < GetProps().total_slots:
  // llama-server silently wraps larger ids around.
  Result<SlotActionResult> SaveSlot(SlotId slot, const std::string& filename) override;
  Result<SlotActionResult> RestoreSlot(SlotId slot, const std::string& filename) override;
  Status EraseSlot(SlotId slot) override;

  // From `deadline` on, slot actions wait for an answer no longer than until
  // it (at least one second): a shutdown must not hang on a llama-server
  // that stopped answering. Forwarded requests are not affected.
  void LimitSlotActionsTo(std::chrono::steady_clock::time_point deadline);

  // OK once /health answers 200; kUpstreamDown or kUpstreamError otherwise.
  Status Health();
  // From /props: slot count, context per slot, model path, llama.cpp build.
  struct Props {
    int total_slots = 0;
    long long n_ctx_slot = 0;
    std::string model_path;
    std::string build;
  };
  Result<Props> GetProps();

  // Sends `request` and streams the answer into `sink`. Returns OK when the
  // whole response was delivered, kUpstreamDown/kUpstreamTimeout on transport
  // failures, kInternal("cancelled") if the sink or `cancel` stopped it.
  Status Forward(const ForwardRequest& request, const ResponseSink& sink, CancelToken* cancel);

  // POSTs `body` (JSON) to `path` and returns llama-server's answer, which
  // must be a 200; kUpstreamError with its message otherwise, and transport
  // errors as the slot actions.
  Result<std::string> PostJson(const std::string& path, const std::string& body);

 private:
  UpstreamOptions options_;
  std::atomic<std::chrono::steady_clock::time_point::rep> action_deadline_{0};  // 0: none
};

}  // namespace agentkv

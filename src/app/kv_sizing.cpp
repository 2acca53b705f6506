#include "app/kv_sizing.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "upstream/upstream.h"

namespace agentkv {

namespace fs = std::filesystem;
using nlohmann::json;

Result<SlotPlan> PlanSlots(const KvCost& cost, std::uint64_t budget, int slots,
                           long long ctx_per_slot) {
  const double b = static_cast<double>(budget);
  auto slot_bytes = [&](long long ctx) {
    return cost.bytes_per_slot + cost.bytes_per_token * static_cast<double>(ctx);
  };
  SlotPlan plan;
  if (ctx_per_slot > 0) {
    plan.ctx_per_slot = ctx_per_slot;
    plan.slots = static_cast<int>(std::min(256.0, std::floor(b / slot_bytes(ctx_per_slot))));
  } else {
    plan.slots = std::max(1, slots);
    const double per_slot = b / plan.slots - cost.bytes_per_slot;
    plan.ctx_per_slot = cost.bytes_per_token > 0
                            ? static_cast<long long>(std::floor(per_slot / cost.bytes_per_token))
                            : 0;
  }
  if (plan.slots < 1 || plan.ctx_per_slot < kMinContext) {
    return Status::Error(
        ErrorCode::kInvalidArgument,
        "a KV RAM budget of " + std::to_string(budget) + " bytes cannot hold one slot of " +
            std::to_string(std::max(plan.ctx_per_slot, kMinContext)) + " tokens: one takes " +
            std::to_string(
                static_cast<long long>(slot_bytes(std::max(ctx_per_slot, kMinContext)))) +
            " bytes with this model and cache type");
  }
  return plan;
}

namespace {

// Fills the slot with `n` prompt tokens and saves it; returns the file's bytes.
Result<double> SavedBytes(Upstream& upstream, int n, const std::string& file) {
  json prompt = json::array();
  for (int i = 0; i < n; ++i) prompt.push_back(300 + i);
  ForwardRequest req;
  req.method = "POST";
  req.path = "/completion";
  req.content_type = "application/json";
  req.body =
      json{{"prompt", prompt}, {"n_predict", 1}, {"id_slot", 0}, {"cache_prompt", false}}.dump();
  int status = 0;
  ResponseSink sink{[&](int s, const HeaderList&) {
                      status = s;
                      return true;
                    },
                    [](const char*, size_t) { return true; }};
  if (Status s = upstream.Forward(req, sink, nullptr); !s.ok()) return s;
  if (status != 200) {
    return Status::Error(ErrorCode::kUpstreamError,
                         "llama-server answered " + std::to_string(status) + " to a prefill");
  }
  Result<SlotActionResult> saved = upstream.SaveSlot(SlotId{0}, file);
  if (!saved.ok()) return saved.status();
  return static_cast<double>(saved->n_bytes);
}

}  // namespace

Result<KvCost> MeasureKvCost(LlamaProcessOptions base) {
  constexpr int kShort = 64, kLong = 192;
  const fs::path dir = base.memory_dir / ("kv-probe-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(dir, ec);
  base.memory_dir = dir;
  base.slots = 1;
  base.port = 0;
  base.extra_args.insert(base.extra_args.end(), {"--ctx-size", "512"});  // the last one wins
  LlamaProcess probe;
  Status started = probe.Start(base);
  Result<KvCost> cost = Status::Error(ErrorCode::kInternal, "not measured");
  if (started.ok()) {
    UpstreamOptions uo;
    uo.base_url = probe.base_url();
    uo.api_key = base.api_key;
    Upstream upstream(uo);
    Result<double> small = SavedBytes(upstream, kShort, "short.kv");
    Result<double> large = small.ok() ? SavedBytes(upstream, kLong, "long.kv") : small;
    if (large.ok()) {
      KvCost c;
      c.bytes_per_token = (large.value() - small.value()) / (kLong - kShort);
      c.bytes_per_slot = std::max(0.0, small.value() - c.bytes_per_token * kShort);
      cost = c;
    } else {
      cost = large.status();
    }
  } else {
    cost = started;
  }
  probe.Stop();
  fs::remove_all(dir, ec);
  return cost;
}

}  // namespace agentkv

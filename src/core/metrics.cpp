#include "core/metrics.h"

#include <charconv>

namespace agentkv {

namespace {

// The shortest text that reads back as `v`.
std::string Number(double v) {
  char buf[32];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void Header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + Number(v) + "\n";
}

void Counter(std::string& out, const char* name, const char* help, long long v) {
  Header(out, name, "counter", help);
  Sample(out, name, "", static_cast<double>(v));
}

void Gauge(std::string& out, const char* name, const char* help, double v) {
  Header(out, name, "gauge", help);
  Sample(out, name, "", v);
}

}  // namespace

void Histogram::Observe(double seconds) {
  MutexLock lock(mu_);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (seconds <= bounds_[i]) ++counts_[i];
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::Render(std::string& out, const std::string& name, const std::string& labels) const {
  MutexLock lock(mu_);
  const std::string sep = labels.empty() ? "" : labels + ",";
  for (size_t i = 0; i < bounds_.size(); ++i) {
    Sample(out, name + "_bucket", sep + "le=\"" + Number(bounds_[i]) + "\"",
           static_cast<double>(counts_[i]));
  }
  Sample(out, name + "_bucket", sep + "le=\"+Inf\"", static_cast<double>(count_));
  Sample(out, name + "_sum", labels, sum_);
  Sample(out, name + "_count", labels, static_cast<double>(count_));
}

void Metrics::CountRequest(const std::string& route, int status) {
  MutexLock lock(mu_);
  ++requests_[{route, status}];
}

void Metrics::ObserveTtft(const std::string& placement, std::chrono::duration<double> ttft) {
  MutexLock lock(mu_);
  ttft_[placement].Observe(ttft.count());
}

void Metrics::ObserveReturnGap(const std::string& after, std::chrono::duration<double> gap) {
  MutexLock lock(mu_);
  return_gap_.try_emplace(after, Histogram::kGapBounds).first->second.Observe(gap.count());
}

std::string Metrics::Render(const GaugeSnapshot& g) const {
  std::string out;
  {
    MutexLock lock(mu_);
    Header(out, "agentkv_requests_total", "counter",
           "HTTP requests answered, by route and status.");
    for (const auto& [key, n] : requests_) {
      Sample(out, "agentkv_requests_total",
             "route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"",
             static_cast<double>(n));
    }
    Header(out, "agentkv_ttft_seconds", "histogram",
           "Time from a request's arrival to llama-server's first response bytes, by how the "
           "agent's KV was placed.");
    for (const auto& [placement, h] : ttft_) {
      h.Render(out, "agentkv_ttft_seconds", "placement=\"" + placement + "\"");
    }
    Header(out, "agentkv_return_gap_seconds", "histogram",
           "Time from the end of an agent's turn to its next request, by how that turn ended "
           "(stop, tool_calls, length, aborted, unknown).");
    for (const auto& [after, h] : return_gap_) {
      h.Render(out, "agentkv_return_gap_seconds", "after=\"" + after + "\"");
    }
  }
  Counter(out, "agentkv_restores_total", "Agent KV files restored into a slot.", restores);
  Counter(out, "agentkv_saves_total", "Agent KV saved to disk.", saves);
  Counter(out, "agentkv_save_failures_total", "Saves that failed; the older file was kept.",
          save_failures);
  Counter(out, "agentkv_evictions_total", "Idle agents displaced from a slot.", evictions);
  Counter(out, "agentkv_saved_bytes_total", "Bytes of agent KV written by saves.", saved_bytes);
  Counter(out, "agentkv_saves_deferred_total",
          "Turn-end saves that waited: for requests' first tokens (--save-deferral-ms), or for "
          "an agent in a tool call (--returning-save-delay-s).",
          saves_deferred);
  Counter(out, "agentkv_restored_bytes_total",
          "Bytes of agent KV restored, ahead of requests or on their path.", restored_bytes);
  Counter(out, "agentkv_prefetches_total",
          "Evicted agents expected back restored into a slot ahead of their request.", prefetches);
  Counter(out, "agentkv_prefetch_hits_total",
          "Requests that found their agent restored ahead (placed resident).", prefetch_hits);
  Counter(out, "agentkv_prefetch_failures_total",
          "Restores ahead of a request that failed; the file and the agent were left as they "
          "were.",
          prefetch_failures);
  Counter(out, "agentkv_fallbacks_total",
          "Restores not done or not trusted: the request was prefilled instead.", fallbacks);
  Counter(out, "agentkv_quarantined_total", "Memory files set aside after failing a check.",
          g.quarantined);
  Counter(out, "agentkv_upstream_resets_total",
          "Times llama-server was found to have lost every slot's KV.", resets);
  Counter(out, "agentkv_upstream_restarts_total", "Times agentkv restarted its llama-server.",
          upstream_restarts);
  Counter(out, "agentkv_tokens_reused_total", "Prompt tokens served from a slot's KV (cache_n).",
          tokens_reused);
  Counter(out, "agentkv_tokens_prefilled_total", "Prompt tokens computed (prompt_n).",
          tokens_prefilled);
  Counter(out, "agentkv_superseded_total",
          "Resident slots found older than the agent's memory in the shared directory "
          "(another node served the agent since), restored anew instead.",
          superseded);
  Counter(out, "agentkv_new_agents_refused_total",
          "Requests for agents agentkv did not know, refused with 429 past their API key's "
          "--max-new-agents-per-minute.",
          new_agents_refused);
  Counter(out, "agentkv_prefix_hits_total",
          "New agents started from a prefix snapshot instead of an empty slot.", prefix_hits);
  Counter(out, "agentkv_prefix_tokens_reused_total",
          "Prompt tokens of those agents' first requests served from the snapshot (cache_n).",
          prefix_tokens_reused);
  Counter(out, "agentkv_prefix_snapshots_total", "Prefix snapshots written.", prefix_snapshots);
  Counter(out, "agentkv_prefix_snapshots_from_memory_total",
          "Prefix snapshots built on the memory of an agent that shares them, not from nothing.",
          prefix_snapshots_from_memory);
  Header(out, "agentkv_restore_duration_seconds", "histogram", "llama-server restore calls.");
  restore_seconds.Render(out, "agentkv_restore_duration_seconds", "");
  Header(out, "agentkv_save_duration_seconds", "histogram",
         "Saves, from llama-server's write to the fsynced rename.");
  save_seconds.Render(out, "agentkv_save_duration_seconds", "");
  Gauge(out, "agentkv_slots", "llama-server slots.", g.slots);
  Gauge(out, "agentkv_resident_slots", "Slots holding an agent's KV.", g.resident_slots);
  Gauge(out, "agentkv_waiting_requests", "Requests waiting for a slot.", g.waiting);
  Gauge(out, "agentkv_agents_on_disk", "Agents with saved memory.",
        static_cast<double>(g.agents_on_disk));
  Gauge(out, "agentkv_disk_bytes", "Bytes of saved memory.", static_cast<double>(g.disk_bytes));
  Gauge(out, "agentkv_disk_budget_bytes", "--disk-budget-bytes (0: no budget).",
        static_cast<double>(g.disk_budget_bytes));
  Gauge(out, "agentkv_quarantine_files", "Files kept in quarantine/ (bounded).",
        static_cast<double>(g.quarantine_files));
  Gauge(out, "agentkv_quarantine_bytes", "Bytes kept in quarantine/ (bounded).",
        static_cast<double>(g.quarantine_bytes));
  Gauge(out, "agentkv_upstream_up", "1 if llama-server answered its last health check.",
        g.upstream_up ? 1 : 0);
  Gauge(out, "agentkv_connections", "Client connections open within the connection caps.",
        g.connections);
  Counter(
      out, "agentkv_connections_refused_total",
      "Client connections past the connection caps: refused with 503, or served a control route "
      "only.",
      g.connections_refused);
  return out;
}

}  // namespace agentkv

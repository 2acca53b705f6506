#include "agentkv/daemon.h"

#include <spdlog/spdlog.h>

#include "agentkv/kv_sizing.h"
#include "agentkv/model_info.h"
#include "agentkv/serving_mode.h"

namespace agentkv {

namespace {

Status WaitReady(Upstream& upstream, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Status s = upstream.Health();
  while (!s.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    s = upstream.Health();
  }
  return s;
}

Result<std::string> FingerprintOf(const Upstream::Props& props, const KvSettings& kv) {
  Result<std::string> model = ModelIdentity(props.model_path);
  if (!model.ok()) {
    return Status::Error(ErrorCode::kIo,
                         "cannot read llama-server's model file " + props.model_path +
                             " to fingerprint agents' memory: agentkv must run on the "
                             "same host as llama-server");
  }
  Fingerprint f;
  f.model = model.value();
  f.n_ctx_slot = props.n_ctx_slot;
  f.cache_type_k = kv.cache_type_k;
  f.cache_type_v = kv.cache_type_v;
  f.build = props.build;
  f.swa_full = kv.swa_full;
  return f.Digest();
}

}  // namespace

KvSettings KvSettings::FromArgs(const std::vector<std::string>& args) {
  KvSettings kv;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if ((a == "-ctk" || a == "--cache-type-k") && has_value)
      kv.cache_type_k = args[++i];
    else if ((a == "-ctv" || a == "--cache-type-v") && has_value)
      kv.cache_type_v = args[++i];
    else if (a == "--swa-full")
      kv.swa_full = true;
  }
  return kv;
}

namespace {

// What the model file says, or nothing (logged) if it cannot be read: agentkv
// then serves as for a dense model, as before it read model files.
ModelInfo ModelInfoOrNothing(const std::filesystem::path& model) {
  Result<ModelInfo> info = ReadModelInfo(model);
  if (info.ok()) return info.value();
  spdlog::info("cannot read the model's metadata ({}): serving it as a dense model",
               info.status().message());
  return {};
}

// Some llama-servers cannot save slots at all (router mode answers 400,
// some builds 501): one save of slot 0 at start tells, instead of a failed
// save after every turn. The probe file is removed again.
void ProbeSlotSaving(Upstream& upstream, const std::filesystem::path& memory_dir,
                     ServingMode* serving) {
  if (!serving->persist) return;
  const std::string probe = "agentkv-save-probe.tmp";
  Result<SlotActionResult> r = upstream.SaveSlot(SlotId{0}, probe);
  std::error_code ec;
  std::filesystem::remove(memory_dir / probe, ec);
  if (r.ok() || r.status().code() != ErrorCode::kUpstreamError) return;
  serving->persist = false;
  serving->why_stateless = "llama-server cannot save a slot (" + r.status().message() +
                           "): agentkv needs its slot save and restore";
}

// Picks the slot count (or context per slot) of the llama-server about to be
// started from the budget and the model's measured KV cost.
Status SizeSlots(DaemonOptions& o, ServingMode* serving) {
  const std::vector<std::string>& args = o.launch->extra_args;
  for (const std::string& a : args) {
    if (a == "-c" || a == "--ctx-size") {
      return Status::Error(ErrorCode::kInvalidArgument,
                           "with --kv-ram-budget, give --ctx-per-slot (or nothing) instead of "
                           "llama-server's --ctx-size");
    }
  }
  if (serving->model.sliding_window > 0) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "--kv-ram-budget cannot size a sliding-window model yet: its slot files "
                         "hold only the window, so they do not measure its RAM; size it with "
                         "--slots and llama-server's --ctx-size");
  }
  spdlog::info("measuring the model's KV cost for --kv-ram-budget (a short llama-server run)");
  Result<KvCost> cost = MeasureKvCost(*o.launch);
  if (!cost.ok()) return cost.status();
  Result<SlotPlan> plan = PlanSlots(cost.value(), o.kv_ram_budget, o.launch->slots, o.ctx_per_slot);
  if (!plan.ok()) return plan.status();
  serving->kv_bytes_per_token = cost->bytes_per_token;
  serving->kv_bytes_per_slot = cost->bytes_per_slot;
  o.launch->slots = plan->slots;
  o.launch->extra_args.push_back("--ctx-size");
  o.launch->extra_args.push_back(std::to_string(plan->slots * plan->ctx_per_slot));
  spdlog::info(
      "KV RAM budget {} bytes, measured {:.0f} bytes per 1K tokens and {:.0f} per slot: {} slots "
      "of {} tokens",
      o.kv_ram_budget, cost->bytes_per_token * 1000, cost->bytes_per_slot, plan->slots,
      plan->ctx_per_slot);
  return Status::Ok();
}

void LogServing(const ServingMode& s) {
  if (!s.model.arch.empty()) {
    spdlog::info(
        "model: {}{}{}{}", s.model.arch,
        s.model.sliding_window > 0
            ? ", sliding window of " + std::to_string(s.model.sliding_window) + " tokens"
            : "",
        s.model.expert_count > 0 ? ", " + std::to_string(s.model.expert_count) + " experts" : "",
        s.model.recurrent ? ", recurrent state (a prompt that diverges from an agent's saved "
                            "tokens is prefilled from its start)"
                          : "");
  }
  if (s.swa_full_added) {
    spdlog::info(
        "starting llama-server with --swa-full: a sliding-window model's slots can only be "
        "restored with its whole context kept (its KV takes more RAM)");
  }
  if (!s.persist) {
    spdlog::warn("agentkv will not save or restore agents' memory: {}", s.why_stateless);
  }
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions o) {
  std::unique_ptr<Daemon> d(new Daemon());
  std::optional<ServingMode> serving;
  if (o.launch) {
    o.launch->memory_dir = o.memory_dir;
    serving =
        DecideServing(ModelInfoOrNothing(o.launch->model),
                      KvSettings::FromArgs(o.launch->extra_args).swa_full, &o.launch->extra_args);
    if (o.kv_ram_budget > 0) {
      if (Status s = SizeSlots(o, &*serving); !s.ok()) return s;
    }
    o.kv = KvSettings::FromArgs(o.launch->extra_args);
    std::error_code ec;
    std::filesystem::create_directories(o.memory_dir, ec);
    if (Status s = d->llama_.Start(*o.launch); !s.ok()) return s;
    o.upstream.base_url = d->llama_.base_url();
  }
  d->upstream_ = std::make_unique<Upstream>(o.upstream);
  if (Status s = WaitReady(*d->upstream_, o.upstream_ready_timeout); !s.ok()) return s;
  Result<Upstream::Props> props = d->upstream_->GetProps();
  if (!props.ok()) return props.status();
  Result<std::string> fingerprint = FingerprintOf(props.value(), o.kv);
  if (!fingerprint.ok()) return fingerprint.status();
  if (!serving)
    serving = DecideServing(ModelInfoOrNothing(props->model_path), o.kv.swa_full, nullptr);
  ProbeSlotSaving(*d->upstream_, o.memory_dir, &*serving);
  LogServing(*serving);
  o.proxy.persist = serving->persist;

  d->store_ = std::make_unique<Store>(o.memory_dir, fingerprint.value(), o.store);
  if (Status s = d->store_->Open(); !s.ok()) return s;
  Store* store = d->store_.get();
  d->pool_ = std::make_unique<SlotPool>(
      props->total_slots, o.queue, [store](const AgentId& a) { return store->HasMemory(a); },
      o.max_pins);
  d->upstream_up_ = true;
  const ReuseChecks checks{!serving->model.recurrent && serving->model.sliding_window == 0,
                           !serving->model.recurrent};
  d->placer_ = std::make_unique<Placer>(*d->pool_, *d->upstream_, *d->store_, o.save_policy,
                                        d->metrics_, checks);
  if (o.proxy.threads <= 0) o.proxy.threads = props->total_slots + o.queue.max_waiting + 16;
  d->admin_ = std::make_unique<AdminApi>(*d->pool_, *d->placer_, *d->store_, *serving);
  ProxyServer::Hooks hooks;
  hooks.gauges = [daemon = d.get()] { return daemon->Gauges(); };
  hooks.wait_upstream = [daemon = d.get(), wait = o.upstream_wait] {
    return daemon->upstream_up_ ||
           daemon->WaitUpstream(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
  };
  d->server_ = std::make_unique<ProxyServer>(o.proxy, *d->upstream_, *d->placer_, *d->admin_,
                                             d->metrics_, hooks);
  Result<int> port = d->server_->Bind();
  if (!port.ok()) return port.status();
  d->port_ = port.value();
  d->serve_thread_ = std::thread([daemon = d.get()] {
    daemon->server_->Serve();
    daemon->serve_returned_ = true;
  });
  while (!d->server_->running() && !d->serve_returned_) std::this_thread::yield();
  if (d->serve_returned_) {
    d->serve_thread_.join();
    return Status::Error(ErrorCode::kIo, "the http front stopped as it started");
  }
  d->options_ = o;
  d->watch_thread_ = std::thread(
      [daemon = d.get(), interval = o.health_interval] { daemon->WatchHealth(interval); });
  spdlog::info("agentkv listening on {}:{}, {} slots at {}, memory in {} ({} agents saved)",
               o.proxy.host, d->port_, props->total_slots, o.upstream.base_url,
               o.memory_dir.string(), d->store_->AgentCount());
  return d;
}

// A llama-server that was down and answers again has lost every slot's KV.
void Daemon::WatchHealth(std::chrono::milliseconds interval) {
  bool was_down = false;
  int restarts_in_a_row = 0;
  auto last_restart = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_cv_.wait_for(lock, interval, [&] { return stopping_; })) {
    lock.unlock();
    bool up = options_.launch ? Supervise(&restarts_in_a_row) : true;
    up = up && upstream_->Health().ok();
    if (!up && !was_down) spdlog::warn("llama-server at {} is down", upstream_->base_url());
    if (up && was_down) placer_->ResetSlots("llama-server came back after being down");
    if (up && restarts_in_a_row > 0 &&
        std::chrono::steady_clock::now() - last_restart > std::chrono::minutes(1)) {
      restarts_in_a_row = 0;  // healthy for a minute: a fresh budget
    }
    if (!up) last_restart = std::chrono::steady_clock::now();
    SetUpstreamUp(up);
    was_down = !up;
    lock.lock();
  }
  // A llama-server restarted from this thread gets SIGTERM when the thread
  // that forked it exits (PR_SET_PDEATHSIG): outlive it.
  watch_idle_ = true;
  stopping_cv_.notify_all();
  stopping_cv_.wait(lock, [&] { return llama_stopped_; });
}

bool Daemon::Supervise(int* restarts_in_a_row) {
  int status = 0;
  if (!llama_.Exited(&status)) return true;
  spdlog::error("llama-server exited unexpectedly (wait status {})", status);
  SetUpstreamUp(false);
  placer_->ResetSlots("llama-server exited");
  while (*restarts_in_a_row < options_.max_restarts) {
    const auto backoff = std::chrono::seconds(1 << std::min(*restarts_in_a_row, 5));
    ++*restarts_in_a_row;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_cv_.wait_for(lock, backoff, [&] { return stopping_; })) return false;
    }
    spdlog::info("restarting llama-server (attempt {} of {})", *restarts_in_a_row,
                 options_.max_restarts);
    ++metrics_.upstream_restarts;
    if (Status s = llama_.Start(*options_.launch); s.ok())
      return true;
    else
      spdlog::error("llama-server restart failed: {}", s.message());
  }
  spdlog::error(
      "llama-server failed {} times in a row: not restarting it again; requests "
      "get 503 until agentkv is restarted",
      options_.max_restarts);
  return false;
}

void Daemon::SetUpstreamUp(bool up) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    upstream_up_ = up;
  }
  stopping_cv_.notify_all();
}

bool Daemon::WaitUpstream(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return stopping_cv_.wait_for(lock, timeout, [&] { return upstream_up_ || stopping_; }) &&
         upstream_up_;
}

GaugeSnapshot Daemon::Gauges() const {
  GaugeSnapshot g;
  g.slots = pool_->slot_count();
  for (int i = 0; i < g.slots; ++i) {
    const SlotView v = pool_->View(SlotId{i});
    g.resident_slots += v.phase != SlotPhase::kFree && v.owner ? 1 : 0;
  }
  g.waiting = pool_->waiting();
  g.agents_on_disk = static_cast<long long>(store_->AgentCount());
  g.disk_bytes = static_cast<long long>(store_->TotalBytes());
  g.quarantined = store_->quarantined();
  const QuarantineUsage q = store_->quarantine_usage();
  g.quarantine_files = static_cast<long long>(q.files);
  g.quarantine_bytes = static_cast<long long>(q.bytes);
  g.upstream_up = upstream_up_;
  return g;
}

Daemon::~Daemon() { Stop(); }

int Daemon::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return 0;
    stopped_ = stopping_ = true;
  }
  using SteadyClock = std::chrono::steady_clock;
  const auto deadline = SteadyClock::now() + options_.stop_timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::seconds>(deadline - SteadyClock::now());
  };
  stopping_cv_.notify_all();
  if (pool_) pool_->Shutdown();  // refuse new placements at once
  // A llama-server that stopped answering (it got the signal too) must not
  // hold the saves below past the deadline.
  if (upstream_) upstream_->LimitSlotActionsTo(deadline);
  bool watch_idle = true;
  if (watch_thread_.joinable()) {  // out of its loop: llama_ is ours now
    std::unique_lock<std::mutex> lock(mu_);
    watch_idle = stopping_cv_.wait_until(lock, deadline, [&] { return watch_idle_; });
  }
  // Saves need time after the drain: a quarter of the whole at least.
  const auto drain_deadline = deadline - options_.stop_timeout / 4;
  if (server_) {
    server_->Drain(std::min(options_.drain_timeout, left() * 3 / 4), drain_deadline);
  }
  int unsaved = 0;
  if (placer_) {
    placer_->Stop();  // the saver ends after the save it runs
    unsaved = placer_->SaveAllDirty(deadline);
    if (unsaved > 0) spdlog::warn("{} resident agents could not be saved at shutdown", unsaved);
  }
  if (server_) server_->Stop();
  if (serve_thread_.joinable()) serve_thread_.join();
  if (watch_idle) llama_.Stop(std::max(std::chrono::seconds(1), left()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    llama_stopped_ = true;
  }
  stopping_cv_.notify_all();
  if (watch_thread_.joinable()) watch_thread_.join();
  return unsaved;
}
}  // namespace agentkv

#include "app/daemon.h"

#include <spdlog/spdlog.h>
#include <sys/random.h>

#include "agentkv/errno_text.h"
#include "app/kv_sizing.h"
#include "store/fingerprint.h"
#include "upstream/child_record.h"
#include "upstream/model_info.h"
#include "upstream/serving_mode.h"

namespace agentkv {

namespace {

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
// save after every turn. The probe file is removed again; in a directory
// shared with other nodes, its name is this node's own.
void ProbeSlotSaving(Upstream& upstream, const std::filesystem::path& memory_dir,
                     const std::string& node, ServingMode* serving) {
  if (!serving->persist) return;
  const std::string probe =
      node.empty() ? "agentkv-save-probe.tmp" : "agentkv-save-probe." + node + ".tmp";
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

// The llama-server agentkv starts answers agentkv alone: it gets a random
// key of its own (unless its arguments set one, which --upstream-key-file
// must then hold), so that no other local process can save, restore or
// erase its slots. The key is never logged.
Status KeyTheChild(DaemonOptions& o) {
  bool keyed_by_arguments = false;
  for (const std::string& a : o.launch->extra_args) {
    keyed_by_arguments |= a == "--api-key" || a == "--api-key-file";
  }
  if (o.upstream.api_key.empty() && !keyed_by_arguments) {
    unsigned char bytes[32];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
      return Status::Error(ErrorCode::kIo,
                           "cannot draw a key for llama-server: " + ErrnoText(errno));
    }
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char b : bytes) {
      o.upstream.api_key += kHex[b >> 4];
      o.upstream.api_key += kHex[b & 15];
    }
  }
  o.launch->api_key = o.upstream.api_key;
  return Status::Ok();
}

// A llama-server that an earlier agentkv started on this memory directory
// and that outlived it holds RAM and would write into the directory.
Status EndLeftoverChild(const std::filesystem::path& record,
                        const std::filesystem::path& memory_dir) {
  RecordedChild found;
  if (Status s = EndRecordedChild(record, memory_dir, &found); !s.ok()) return s;
  if (found.ended > 0) {
    spdlog::warn("ended the llama-server (pid {}) that an earlier agentkv left running on {}",
                 found.ended, memory_dir.string());
  }
  if (found.live_parent > 0) {
    spdlog::warn(
        "another agentkv (pid {}) with its llama-server (pid {}) serves {}: two daemons on one "
        "memory directory overwrite each other's agents; give each its own, or --node-id",
        found.live_parent, found.left_running, memory_dir.string());
  }
  return Status::Ok();
}

// Creates the memory directory (0700) if needed, warns if others may read
// it, and makes this daemon its owner (see DirLock).
Result<std::unique_ptr<DirLock>> OwnMemoryDir(const std::filesystem::path& dir,
                                              const std::string& node) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::create_directories(dir, ec) && !ec) fs::permissions(dir, fs::perms::owner_all, ec);
  const fs::perms others = fs::perms::group_all | fs::perms::others_all;
  const fs::file_status st = fs::status(dir, ec);
  if (!ec && (st.permissions() & others) != fs::perms::none) {
    spdlog::warn(
        "memory directory {} can be read by other users (mode {:o}): its files hold agents' "
        "conversations (a saved KV starts with the prompt's token ids); chmod 700 it",
        dir.string(), static_cast<unsigned>(st.permissions()));
  }
  return DirLock::Acquire(dir, node);
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
  Result<std::unique_ptr<DirLock>> lock = OwnMemoryDir(o.memory_dir, o.store.node);
  if (!lock.ok()) return lock.status();
  d->lock_ = std::move(lock.value());
  std::optional<ServingMode> serving;
  std::unique_ptr<LlamaProcess> llama;
  if (o.launch) {
    o.launch->memory_dir = o.memory_dir;
    if (Status s = KeyTheChild(o); !s.ok()) return s;
    serving =
        DecideServing(ModelInfoOrNothing(o.launch->model),
                      KvSettings::FromArgs(o.launch->extra_args).swa_full, &o.launch->extra_args);
    if (o.kv_ram_budget > 0) {
      if (Status s = SizeSlots(o, &*serving); !s.ok()) return s;
    }
    o.kv = KvSettings::FromArgs(o.launch->extra_args);
    o.launch->record_file = ChildRecordPath(o.memory_dir, o.store.node);
    if (Status s = EndLeftoverChild(o.launch->record_file, o.memory_dir); !s.ok()) return s;
    llama = std::make_unique<LlamaProcess>(*o.launch);
    o.upstream.base_url = llama->base_url();
  }
  d->upstream_ = std::make_unique<Upstream>(o.upstream);
  if (Status s = d->StartSupervisor(o, std::move(llama)); !s.ok()) return s;
  Result<Upstream::Props> props = d->upstream_->GetProps();
  if (!props.ok()) return props.status();
  Result<std::string> fingerprint = FingerprintOf(props.value(), o.kv);
  if (!fingerprint.ok()) return fingerprint.status();
  if (!serving)
    serving = DecideServing(ModelInfoOrNothing(props->model_path), o.kv.swa_full, nullptr);
  ProbeSlotSaving(*d->upstream_, o.memory_dir, o.store.node, &*serving);
  LogServing(*serving);
  o.proxy.persist = serving->persist;

  d->store_ = std::make_unique<Store>(o.memory_dir, fingerprint.value(), o.store);
  if (Status s = d->store_->Open(); !s.ok()) return s;
  Store* store = d->store_.get();
  d->pool_ = std::make_unique<SlotPool>(
      props->total_slots, o.queue, [store](const AgentId& a) { return store->HasMemory(a); },
      o.max_pins, &Clock::now, o.eviction);
  const ReuseChecks checks{!serving->model.recurrent && serving->model.sliding_window == 0,
                           !serving->model.recurrent};
  ReturnAware aware = o.return_aware;
  if (!o.store.node.empty()) aware.save_delay = std::chrono::milliseconds(0);
  d->placer_ = std::make_unique<Placer>(*d->pool_, *d->upstream_, *d->store_, o.save_policy,
                                        d->metrics_, checks, o.save_deferral, aware);
  d->memory_ =
      std::make_unique<MemoryOps>(*d->pool_, *d->upstream_, *d->store_, *d->placer_, d->metrics_);
  auto upstream_up = [supervisor = d->supervisor_.get()] { return supervisor->IsUp(); };
  d->status_ = std::make_unique<StatusReport>(
      StatusReport::Sources{*d->pool_, *d->placer_, *d->store_, d->metrics_, d->activity_,
                            upstream_up, o.store.budget_bytes, serving->persist});
  d->admin_ = std::make_unique<AdminApi>(*d->pool_, *d->placer_, *d->memory_, *d->store_,
                                         d->metrics_, *serving, d->status_.get());
  ProxyServer::Hooks hooks;
  hooks.activity = &d->activity_;
  hooks.gauges = [daemon = d.get()] { return daemon->Gauges(); };
  hooks.wait_upstream = [supervisor = d->supervisor_.get(), wait = o.upstream_wait] {
    return supervisor->WaitUp(wait);
  };
  hooks.upstream_unreachable = [supervisor = d->supervisor_.get()] { supervisor->Suspect(); };
  hooks.upstream_problem = [supervisor = d->supervisor_.get()] { return supervisor->Problem(); };
  // A snapshot is restored under prompts that go on differently: the KV
  // must be cut back to the shared part, which recurrent and sliding-window
  // caches cannot do.
  if (o.prefix_min_tokens > 0 && serving->persist && checks.after_restore) {
    d->prefixes_ = std::make_unique<Prefixes>(o.prefix_min_tokens);
    d->prefix_path_ = std::make_unique<PrefixPath>(*d->upstream_, *d->pool_, *d->memory_,
                                                   *d->store_, *d->prefixes_);
    hooks.prefixes = d->prefix_path_.get();
  }
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
  d->supervisor_->Watch();
  spdlog::info("agentkv listening on {}:{}, {} slots at {}, memory in {} ({} agents saved)",
               o.proxy.host, d->port_, props->total_slots, o.upstream.base_url,
               o.memory_dir.string(), d->store_->AgentCount());
  if (ListenHostNames(o.proxy.host).empty() && o.proxy.browser.allowed_hosts.empty()) {
    spdlog::warn(
        "listening on every address, but only requests with a loopback Host "
        "(localhost, 127.0.0.1, [::1]) are served: name the others in --allowed-hosts");
  }
  return d;
}

Status Daemon::StartSupervisor(const DaemonOptions& o, std::unique_ptr<LlamaProcess> llama) {
  SupervisorOptions so;
  so.url = o.upstream.base_url;
  so.health_interval = o.health_interval;
  so.max_restarts = o.max_restarts;
  if (o.launch) so.ready_timeout = o.launch->ready_timeout;
  SupervisorEvents events;
  events.lost_kv = [this](const char* why) { placer_->ResetSlots(why); };
  events.restarting = [this] { ++metrics_.upstream_restarts; };
  events.alive = o.on_alive;
  // A started llama-server is healthy only if it answers on its own port.
  auto health = [upstream = upstream_.get(), child = llama.get()] {
    return child != nullptr ? child->CheckHealth(*upstream) : upstream->Health();
  };
  supervisor_ =
      std::make_unique<UpstreamSupervisor>(so, std::move(llama), std::move(health),
                                           std::make_unique<SteadyWaitClock>(), std::move(events));
  return supervisor_->Start(o.launch ? o.launch->ready_timeout : o.upstream_ready_timeout);
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
  g.disk_budget_bytes = static_cast<long long>(options_.store.budget_bytes);
  g.quarantined = store_->quarantined();
  const QuarantineUsage q = store_->quarantine_usage();
  g.quarantine_files = static_cast<long long>(q.files);
  g.quarantine_bytes = static_cast<long long>(q.bytes);
  g.upstream_up = supervisor_->IsUp();
  return g;
}

Daemon::~Daemon() { Stop(); }

int Daemon::Stop() {
  if (stopped_.exchange(true)) return 0;
  using SteadyClock = std::chrono::steady_clock;
  const auto deadline = SteadyClock::now() + options_.stop_timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::seconds>(deadline - SteadyClock::now());
  };
  if (pool_) pool_->Shutdown();  // refuse new placements at once
  // A llama-server that stopped answering (it got the signal too) must not
  // hold the saves below past the deadline.
  if (upstream_) upstream_->LimitSlotActionsTo(deadline);
  // No restart and no reset of the slots while their agents are saved.
  if (supervisor_) supervisor_->StopWatching(deadline);
  // Saves need time after the drain: a quarter of the whole at least.
  const auto drain_deadline = deadline - options_.stop_timeout / 4;
  if (server_) {
    server_->Drain(std::min(options_.drain_timeout, left() * 3 / 4), drain_deadline);
  }
  int unsaved = 0;
  if (memory_) memory_->Stop();
  if (placer_) {
    placer_->Stop();  // the saver ends after the save it runs
    unsaved = placer_->SaveAllDirty(deadline);
    if (unsaved > 0) spdlog::warn("{} resident agents could not be saved at shutdown", unsaved);
  }
  if (server_) server_->Stop();
  if (serve_thread_.joinable()) serve_thread_.join();
  if (supervisor_) supervisor_->Stop(std::max(std::chrono::seconds(1), left()));
  lock_.reset();  // another agentkv may own the directory from here on
  return unsaved;
}
}  // namespace agentkv

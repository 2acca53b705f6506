#include "agentkv/daemon.h"

#include <spdlog/spdlog.h>

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

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions o) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->store_ = std::make_unique<Store>(o.memory_dir);
  if (Status s = d->store_->Open(); !s.ok()) return s;

  if (o.launch) {
    o.launch->memory_dir = o.memory_dir;
    if (Status s = d->llama_.Start(*o.launch); !s.ok()) return s;
    o.upstream.base_url = d->llama_.base_url();
  }
  d->upstream_ = std::make_unique<Upstream>(o.upstream);
  if (Status s = WaitReady(*d->upstream_, o.upstream_ready_timeout); !s.ok()) return s;
  Result<int> slots = d->upstream_->SlotCount();
  if (!slots.ok()) return slots.status();

  d->pool_ = std::make_unique<SlotPool>(slots.value(), o.queue);
  d->placer_ = std::make_unique<Placer>(*d->pool_, *d->upstream_, *d->store_);
  if (o.proxy.threads <= 0) o.proxy.threads = slots.value() + o.queue.max_waiting + 16;
  d->server_ = std::make_unique<ProxyServer>(o.proxy, *d->upstream_, *d->placer_);
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
  spdlog::info("agentkv listening on {}:{}, {} slots at {}, memory in {}", o.proxy.host,
               d->port_, slots.value(), o.upstream.base_url, o.memory_dir.string());
  return d;
}

Daemon::~Daemon() { Stop(); }

void Daemon::Stop() {
  if (pool_) pool_->Shutdown();
  if (server_) server_->Stop();
  if (serve_thread_.joinable()) serve_thread_.join();
  llama_.Stop();
}

}  // namespace agentkv

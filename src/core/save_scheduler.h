#pragma once
// When turn-end saves run: a queue of slots to save, each due at once or
// after a delay (ReturnAware::save_delay), run one at a time on a thread of
// its own, and held back while requests wait for their first token
// (SaveDeferral). How a slot is saved is the Placer's: this only decides
// when, and calls `save`. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <optional>
#include <thread>
#include <utility>

#include "agentkv/mutex.h"
#include "agentkv/slot_actions.h"
#include "core/metrics.h"

namespace agentkv {

// When a turn-end save runs. A save competes with a prefill for
// llama-server's loop and for the CPU, and what a client waits for is the
// first token: a save waits `grace` for a request to arrive (agents that
// follow each other send the next turn within milliseconds), then while any
// request has no first token yet, `bound` at most from the turn's end. A
// later save only widens, by at most `bound`, the window in which a crash
// costs the last turn's KV (the older file stays good; the turn is
// prefilled again).
struct SaveDeferral {
  std::chrono::milliseconds grace{50};
  std::chrono::milliseconds bound{2000};
};

class SaveScheduler {
 public:
  // A request between its arrival and its first byte from llama-server
  // (Prefilling()); saves wait while any is open. Move-only.
  class PrefillTicket {
   public:
    PrefillTicket() = default;
    explicit PrefillTicket(SaveScheduler* saves) : saves_(saves) {}
    PrefillTicket(PrefillTicket&& other) noexcept : saves_(std::exchange(other.saves_, nullptr)) {}
    PrefillTicket& operator=(PrefillTicket&& other) noexcept;
    PrefillTicket(const PrefillTicket&) = delete;
    PrefillTicket& operator=(const PrefillTicket&) = delete;
    ~PrefillTicket() { End(); }
    // The first token arrived (or the request ended): saves may run.
    void End();

   private:
    SaveScheduler* saves_ = nullptr;
  };

  // Starts the saver thread, which calls `save` for each slot when it is
  // due (never two at once); a save that waited for a delay or for a first
  // token counts in metrics.saves_deferred.
  SaveScheduler(SaveDeferral deferral, std::function<void(SlotId)> save, Metrics& metrics);
  ~SaveScheduler();

  // Opens a ticket for a request that just arrived; see PrefillTicket.
  PrefillTicket Prefilling();
  // True while any request waits for its first token.
  bool AnyPrefilling() const;
  // Queues a save of `slot`: at once, or not before `delayed_until`. A slot
  // queued already is saved once, at the earlier time.
  void Schedule(SlotId slot, std::optional<std::chrono::steady_clock::time_point> delayed_until);
  // Blocks until no save is queued or running (tests, shutdown); saves
  // queued meanwhile no longer wait for prefills, nor for a delay.
  void Drain();
  // Ends the saver thread; queued saves are dropped (a graceful stop saves
  // every dirty slot itself). Idempotent.
  void Stop();

 private:
  struct QueuedSave {
    SlotId slot;
    std::chrono::steady_clock::time_point due;  // not before
    long long arrivals = 0;                     // arrivals_ then; -1: delayed
  };
  void EndPrefill();
  void Loop();

  const SaveDeferral deferral_;
  const std::function<void(SlotId)> save_;
  Metrics& metrics_;
  mutable Mutex mu_;
  std::condition_variable_any changed_;
  // Saved in the order they are due. A list: entries stay put while the
  // saver waits for one.
  std::list<QueuedSave> queue_ GUARDED_BY(mu_);
  long long scheduled_ GUARDED_BY(mu_) = 0;  // saves ever queued
  bool saving_ GUARDED_BY(mu_) = false;
  int prefilling_ GUARDED_BY(mu_) = 0;      // open PrefillTickets
  long long arrivals_ GUARDED_BY(mu_) = 0;  // PrefillTickets ever opened
  int draining_ GUARDED_BY(mu_) = 0;        // Drain() callers: saves do not wait
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace agentkv

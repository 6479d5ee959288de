#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/clock.h"
#include "engine/engine.h"
#include "engine/vm_budget.h"

namespace airlock::engine {

struct PoolStats {
  std::string name;
  Profile profile;
  int target = 0;
  int ready = 0;
  int in_use = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t refill_errors = 0;
  SteadyClock::time_point last_used;  // created, or last asked for a guest
  std::string last_refill_error;      // why the latest failed refill failed; empty: none failed
};

// Guests of one profile started before anyone asks for them. Every guest is
// single-use: it leaves the pool for one request and is destroyed after it.
// A background thread keeps `target` guests ready; a guest whose VM died
// while waiting is dropped, never handed out.
class WarmPool {
 public:
  // Counts a request of this profile as in use until it is destroyed;
  // carries the guest when the request was a hit.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    std::optional<ReadyGuest> take_guest() { return std::move(guest_); }
    // The guest's share of the VM budget (with a hit under a budget).
    std::optional<VmBudget::Reservation> take_reservation() { return std::move(reservation_); }
    bool hit() const { return hit_; }

   private:
    friend class WarmPool;
    Lease(WarmPool* pool, std::optional<ReadyGuest> guest, std::optional<VmBudget::Reservation> reservation);
    WarmPool* pool_;
    std::optional<ReadyGuest> guest_;
    std::optional<VmBudget::Reservation> reservation_;
    bool hit_;
  };

  // `on_started` (optional) sees every guest the pool starts, e.g. for metrics.
  // `budget` (optional): every guest the pool starts is counted in it; a
  // refill that does not fit waits for room.
  WarmPool(Engine& engine, Profile profile, int target,
           std::function<void(const ReadyGuest&)> on_started = nullptr, VmBudget* budget = nullptr);
  ~WarmPool();
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  Lease acquire();
  void set_target(int target);
  PoolStats stats() const;
  // Destroys one ready guest (its room in the budget is wanted by a run);
  // false if none is ready. The pool refills when there is room again.
  bool shed_one();

 private:
  struct Ready {
    ReadyGuest guest;
    std::optional<VmBudget::Reservation> reservation;
  };
  void refill_loop();
  std::optional<VmBudget::Reservation> room_for_one();

  Engine& engine_;
  const Profile profile_;
  const std::function<void(const ReadyGuest&)> on_started_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  VmBudget* const budget_;
  std::deque<Ready> ready_;
  SteadyClock::time_point last_used_ = SteadyClock::now();
  int target_;
  int starting_ = 0;
  int in_use_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t refill_errors_ = 0;
  std::string last_refill_error_;
  bool stopping_ = false;
  CancelToken stop_;  // aborts a refill in progress when the pool is destroyed
  std::thread refiller_;
};

}  // namespace airlock::engine

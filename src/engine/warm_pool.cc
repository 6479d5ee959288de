#include "engine/warm_pool.h"

#include <poll.h>

#include <chrono>
#include <utility>

#include "common/error.h"

namespace airlock::engine {

namespace {

// A failing refill (images gone, QEMU broken) must not spin.
constexpr auto kRefillBackoff = std::chrono::seconds(2);

bool vm_stopped(const ReadyGuest& guest) {
  pollfd p{guest.exit_fd(), POLLIN, 0};
  return guest.exit_fd() < 0 || ::poll(&p, 1, 0) != 0;
}

}  // namespace

WarmPool::Lease::Lease(WarmPool* pool, std::optional<ReadyGuest> guest,
                       std::optional<VmBudget::Reservation> reservation)
    : pool_(pool), guest_(std::move(guest)), reservation_(std::move(reservation)), hit_(guest_.has_value()) {}

WarmPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      guest_(std::move(other.guest_)),
      reservation_(std::move(other.reservation_)),
      hit_(other.hit_) {}

WarmPool::Lease::~Lease() {
  if (!pool_) return;
  std::lock_guard lock(pool_->mutex_);
  --pool_->in_use_;
}

WarmPool::WarmPool(Engine& engine, Profile profile, int target,
                   std::function<void(const ReadyGuest&)> on_started, VmBudget* budget)
    : engine_(engine),
      profile_(std::move(profile)),
      on_started_(std::move(on_started)),
      budget_(budget),
      target_(target) {
  refiller_ = std::thread([this] { refill_loop(); });
}

WarmPool::~WarmPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.cancel();
  wake_.notify_all();
  refiller_.join();
  // Ready guests are destroyed with the deque: QEMU killed, directories removed.
}

WarmPool::Lease WarmPool::acquire() {
  std::optional<Ready> taken;
  {
    std::lock_guard lock(mutex_);
    while (!ready_.empty() && !taken) {
      Ready candidate = std::move(ready_.front());
      ready_.pop_front();
      if (!vm_stopped(candidate.guest)) taken = std::move(candidate);
      // else: it died waiting (killed, crashed); dropped, and the refill replaces it.
    }
    ++in_use_;
    taken ? ++hits_ : ++misses_;
    last_used_ = SteadyClock::now();
  }
  wake_.notify_all();
  if (!taken) return Lease(this, std::nullopt, std::nullopt);
  return Lease(this, std::move(taken->guest), std::move(taken->reservation));
}

bool WarmPool::shed_one() {
  std::optional<Ready> shed;
  {
    std::lock_guard lock(mutex_);
    if (ready_.empty()) return false;
    shed = std::move(ready_.back());
    ready_.pop_back();
  }
  return true;  // destroyed here, outside the lock: QEMU killed, room given back
}

void WarmPool::set_target(int target) {
  std::deque<Ready> surplus;
  {
    std::lock_guard lock(mutex_);
    target_ = target;
    while (static_cast<int>(ready_.size()) > target_) {
      surplus.push_back(std::move(ready_.back()));
      ready_.pop_back();
    }
  }
  wake_.notify_all();
  // `surplus` is destroyed here, outside the lock.
}

PoolStats WarmPool::stats() const {
  std::lock_guard lock(mutex_);
  return {profile_.name(), profile_,
          target_,         static_cast<int>(ready_.size()),
          in_use_,         hits_,
          misses_,         refill_errors_,
          last_used_,      last_refill_error_};
}

void WarmPool::refill_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || static_cast<int>(ready_.size()) + starting_ < target_; });
    if (stopping_) return;
    ++starting_;
    lock.unlock();
    std::optional<VmBudget::Reservation> room = room_for_one();
    if (budget_ && !room) {
      // No room in the budget: try again when a VM somewhere is destroyed.
      lock.lock();
      --starting_;
      continue;
    }
    std::optional<ReadyGuest> guest;
    // A refill that fails says why in the pool's stats (GET /v1/pools): a
    // broken image or warm-up otherwise shows only as a pool that stays empty.
    std::string failure;
    try {
      guest.emplace(engine_.start_lasting_guest(profile_, &stop_));
      if (on_started_) on_started_(*guest);
      engine_.warm_guest(*guest);
    } catch (const std::exception& e) {
      failure = *e.what() ? e.what() : "unknown error";
    }
    lock.lock();
    --starting_;
    if (!failure.empty()) {
      ++refill_errors_;
      if (!stopping_) last_refill_error_ = failure;
      wake_.wait_for(lock, kRefillBackoff, [this] { return stopping_; });
      continue;
    }
    if (!stopping_ && static_cast<int>(ready_.size()) < target_) {
      ready_.push_back({std::move(*guest), std::move(room)});
    } else {
      lock.unlock();
      guest.reset();
      room.reset();
      lock.lock();
    }
  }
}

std::optional<VmBudget::Reservation> WarmPool::room_for_one() {
  if (!budget_) return std::nullopt;
  // Short waits, so that a pool being destroyed is not held up by a full budget.
  for (int i = 0; i < 10; ++i) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return std::nullopt;
    }
    if (auto room =
            budget_->reserve_within(profile_.memory_mb, profile_.cpus, std::chrono::milliseconds(100))) {
      return room;
    }
  }
  return std::nullopt;
}

}  // namespace airlock::engine

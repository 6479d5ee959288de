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

WarmPool::Lease::Lease(WarmPool* pool, std::optional<ReadyGuest> guest)
    : pool_(pool), guest_(std::move(guest)), hit_(guest_.has_value()) {}

WarmPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), guest_(std::move(other.guest_)), hit_(other.hit_) {}

WarmPool::Lease::~Lease() {
  if (!pool_) return;
  std::lock_guard lock(pool_->mutex_);
  --pool_->in_use_;
}

WarmPool::WarmPool(Engine& engine, Profile profile, int target,
                   std::function<void(const ReadyGuest&)> on_started)
    : engine_(engine), profile_(std::move(profile)), on_started_(std::move(on_started)), target_(target) {
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
  std::optional<ReadyGuest> guest;
  {
    std::lock_guard lock(mutex_);
    while (!ready_.empty() && !guest) {
      ReadyGuest candidate = std::move(ready_.front());
      ready_.pop_front();
      if (!vm_stopped(candidate)) guest = std::move(candidate);
      // else: it died waiting (killed, crashed); dropped, and the refill replaces it.
    }
    ++in_use_;
    guest ? ++hits_ : ++misses_;
  }
  wake_.notify_all();
  return Lease(this, std::move(guest));
}

void WarmPool::set_target(int target) {
  std::deque<ReadyGuest> surplus;
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
  return {profile_.name(), profile_, target_, static_cast<int>(ready_.size()),
          in_use_,         hits_,    misses_, refill_errors_};
}

void WarmPool::refill_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || static_cast<int>(ready_.size()) + starting_ < target_; });
    if (stopping_) return;
    ++starting_;
    lock.unlock();
    std::optional<ReadyGuest> guest;
    bool failed = false;
    try {
      guest.emplace(engine_.start_guest(profile_, &stop_));
      if (on_started_) on_started_(*guest);
      engine_.warm_guest(*guest);
    } catch (const std::exception&) {
      failed = true;
    }
    lock.lock();
    --starting_;
    if (failed) {
      ++refill_errors_;
      wake_.wait_for(lock, kRefillBackoff, [this] { return stopping_; });
      continue;
    }
    if (!stopping_ && static_cast<int>(ready_.size()) < target_) {
      ready_.push_back(std::move(*guest));
    } else {
      lock.unlock();
      guest.reset();
      lock.lock();
    }
  }
}

}  // namespace airlock::engine

#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

namespace airlock::server {

// At most `max_running` runs at once; up to `max_queued` more wait at most
// `max_wait` for a slot; beyond that a request is refused (HTTP 429), so a
// flood can neither start unbounded VMs nor pile up unbounded waiters.
class Admission {
 public:
  class Ticket {
   public:
    explicit Ticket(Admission* owner) : owner_(owner) {}
    Ticket(Ticket&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket();

   private:
    Admission* owner_;
  };

  Admission(int max_running, int max_queued, std::chrono::milliseconds max_wait)
      : max_running_(max_running), max_queued_(max_queued), max_wait_(max_wait) {}

  // A ticket while the run may proceed, or nullopt: refused.
  std::optional<Ticket> enter();

  struct Load {
    int running = 0;
    int queued = 0;
  };
  Load load() const;

 private:
  const int max_running_;
  const int max_queued_;
  const std::chrono::milliseconds max_wait_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  int running_ = 0;
  int queued_ = 0;
};

// Bytes of run output the daemon may hold at once, across all requests. A run
// reserves what its output can cost before it starts (Api::output_cost) and
// gives it back once its response is written; a run that does not fit is
// refused (HTTP 429, retryable), so the daemon's memory for output has a
// stated bound however many callers ask for large limits.
class ByteBudget {
 public:
  class Reservation {
   public:
    Reservation(ByteBudget* owner, uint64_t bytes) : owner_(owner), bytes_(bytes) {}
    Reservation(Reservation&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), bytes_(other.bytes_) {}
    Reservation& operator=(Reservation&&) = delete;
    ~Reservation();

   private:
    ByteBudget* owner_;
    uint64_t bytes_;
  };

  explicit ByteBudget(uint64_t total) : total_(total) {}
  std::optional<Reservation> reserve(uint64_t bytes);
  uint64_t total() const { return total_; }

 private:
  const uint64_t total_;
  std::mutex mutex_;
  uint64_t used_ = 0;
};

}  // namespace airlock::server

#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

namespace airlock::engine {

// What the VMs of one daemon may take of the host together, pooled and
// running alike: guest memory and vCPUs. A VM is counted from before it
// starts until it is destroyed. A pool refill that does not fit waits; a run
// that does not fit is refused (or first takes the room of ready pooled VMs,
// the caller's choice). Without a budget every pool could fill the host.
class VmBudget {
 public:
  class Reservation {
   public:
    Reservation(Reservation&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), memory_mb_(other.memory_mb_), cpus_(other.cpus_) {}
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    ~Reservation() { release(); }

   private:
    friend class VmBudget;
    Reservation(VmBudget* owner, int64_t memory_mb, int cpus)
        : owner_(owner), memory_mb_(memory_mb), cpus_(cpus) {}
    void release();
    VmBudget* owner_;
    int64_t memory_mb_;
    int cpus_;
  };

  // What QEMU itself takes beside the guest's RAM (heap, TCG buffers; ~30-45 MiB measured).
  static constexpr int64_t kVmOverheadMb = 64;

  VmBudget(int64_t memory_mb, int cpus) : memory_mb_(memory_mb), cpus_(cpus) {}

  // Marks a run that is making room (by destroying ready pooled VMs) while it
  // lives: room freed meanwhile goes to the run, not to a pool refill.
  class Claim {
   public:
    explicit Claim(VmBudget& budget);
    ~Claim();
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;

   private:
    VmBudget& budget_;
  };

  // For a VM with this much guest memory (kVmOverheadMb is added) and vCPUs.
  // Without `claimant` (a pool refill) it yields to any live Claim.
  std::optional<Reservation> try_reserve(int64_t memory_mb, int cpus, bool claimant = false);
  // Waits at most `wait` for room (a VM destroyed elsewhere frees it).
  std::optional<Reservation> reserve_within(int64_t memory_mb, int cpus, std::chrono::milliseconds wait,
                                            bool claimant = false);

  struct Usage {
    int64_t memory_mb, memory_budget_mb;
    int cpus, cpu_budget;
  };
  Usage usage() const;

 private:
  bool fits(int64_t memory_mb, int cpus, bool claimant) const;

  const int64_t memory_mb_;
  const int cpus_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  int64_t used_memory_mb_ = 0;
  int used_cpus_ = 0;
  int claims_ = 0;
};

}  // namespace airlock::engine

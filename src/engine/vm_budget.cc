#include "engine/vm_budget.h"

namespace airlock::engine {

VmBudget::Reservation& VmBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    memory_mb_ = other.memory_mb_;
    cpus_ = other.cpus_;
  }
  return *this;
}

void VmBudget::Reservation::release() {
  if (!owner_) return;
  {
    std::lock_guard lock(owner_->mutex_);
    owner_->used_memory_mb_ -= memory_mb_;
    owner_->used_cpus_ -= cpus_;
  }
  owner_->freed_.notify_all();
  owner_ = nullptr;
}

VmBudget::Claim::Claim(VmBudget& budget) : budget_(budget) {
  std::lock_guard lock(budget_.mutex_);
  ++budget_.claims_;
}

VmBudget::Claim::~Claim() {
  {
    std::lock_guard lock(budget_.mutex_);
    --budget_.claims_;
  }
  budget_.freed_.notify_all();
}

bool VmBudget::fits(int64_t memory_mb, int cpus, bool claimant) const {
  return (claimant || claims_ == 0) && used_memory_mb_ + memory_mb <= memory_mb_ &&
         used_cpus_ + cpus <= cpus_;
}

std::optional<VmBudget::Reservation> VmBudget::try_reserve(int64_t memory_mb, int cpus, bool claimant) {
  return reserve_within(memory_mb, cpus, std::chrono::milliseconds(0), claimant);
}

std::optional<VmBudget::Reservation> VmBudget::reserve_within(int64_t memory_mb, int cpus,
                                                              std::chrono::milliseconds wait, bool claimant) {
  memory_mb += kVmOverheadMb;
  std::unique_lock lock(mutex_);
  if (!freed_.wait_for(lock, wait, [&] { return fits(memory_mb, cpus, claimant); })) return std::nullopt;
  used_memory_mb_ += memory_mb;
  used_cpus_ += cpus;
  return Reservation(this, memory_mb, cpus);
}

VmBudget::Usage VmBudget::usage() const {
  std::lock_guard lock(mutex_);
  return {used_memory_mb_, memory_mb_, used_cpus_, cpus_};
}

}  // namespace airlock::engine

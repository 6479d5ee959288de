#include "server/admission.h"

namespace airlock::server {

Admission::Ticket::~Ticket() {
  if (!owner_) return;
  {
    std::lock_guard lock(owner_->mutex_);
    --owner_->running_;
  }
  owner_->freed_.notify_one();
}

Admission::Load Admission::load() const {
  std::lock_guard lock(mutex_);
  return {running_, queued_};
}

std::optional<Admission::Ticket> Admission::enter() {
  std::unique_lock lock(mutex_);
  if (running_ < max_running_) {
    ++running_;
    return Ticket(this);
  }
  if (queued_ >= max_queued_) return std::nullopt;
  ++queued_;
  bool admitted = freed_.wait_for(lock, max_wait_, [this] { return running_ < max_running_; });
  --queued_;
  if (!admitted) return std::nullopt;
  ++running_;
  return Ticket(this);
}

ByteBudget::Reservation::~Reservation() {
  if (!owner_) return;
  std::lock_guard lock(owner_->mutex_);
  owner_->used_ -= bytes_;
}

std::optional<ByteBudget::Reservation> ByteBudget::reserve(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  if (bytes > total_ - used_) return std::nullopt;
  used_ += bytes;
  return Reservation(this, bytes);
}

}  // namespace airlock::server

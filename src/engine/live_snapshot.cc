// A live sandbox's pause, resume and snapshot: what it does to its VM.
#include <filesystem>

#include "common/error.h"
#include "engine/live_sandbox.h"
#include "vmm/disk_image.h"

namespace airlock::engine {

namespace {

// How long a guest gets to answer quiesce and resume: the agent does either
// at once, unless its VM is gone.
constexpr auto kGuestAnswer = std::chrono::seconds(10);

}  // namespace

void LiveSandbox::pause() {
  std::lock_guard control(control_mutex_);
  vmm::Vm* vm = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || !guest_) throw Error(ErrorCode::conflict, state_message());
    if (paused_) return;
    vm = &guest_->vm();
  }
  vm->pause();
  std::lock_guard lock(mutex_);
  paused_ = true;
  paused_at_ = std::chrono::system_clock::now();
}

void LiveSandbox::resume() {
  std::lock_guard control(control_mutex_);
  vmm::Vm* vm = nullptr;
  std::shared_ptr<GuestMux> mux;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || !guest_) throw Error(ErrorCode::conflict, state_message());
    if (!paused_) return;
    vm = &guest_->vm();
    mux = mux_;
  }
  vm->resume();
  {
    // It runs from here on, whatever the guest answers below.
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::system_clock::now();
    paused_ = false;
    // Paused time is not idle time.
    idle_since_ += now - paused_at_;
    paused_total_ += std::chrono::duration_cast<SteadyClock::duration>(now - paused_at_);
  }
  // Its clock stood still while it was paused (TCG's virtual clock and
  // kvmclock both stop with the vCPUs): the agent sets it again.
  mux->ask(protocol::FrameType::resume, resume_message(false).to_payload(), protocol::FrameType::resumed,
           "resume", SteadyClock::now() + kGuestAnswer);
}

LiveSandbox::TakenSnapshot LiveSandbox::snapshot_into(const std::string& state_path,
                                                      const std::string& disk_path) {
  std::lock_guard control(control_mutex_);
  vmm::Vm* vm = nullptr;
  std::shared_ptr<GuestMux> mux;
  TakenSnapshot taken;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || paused_ || !guest_ || !mux_) {
      throw Error(ErrorCode::conflict, state_message() + (paused_ ? "; resume it to snapshot it" : ""));
    }
    if (!spec_.plan.profile.mounts.empty()) {
      throw Error(ErrorCode::conflict, "sandbox " + id_ +
                                           " has mounts, and a snapshot cannot hold them (a mounted 9p "
                                           "share does not migrate)");
    }
    vm = &guest_->vm();
    mux = mux_;
    taken.named_memory = guest_->from_snapshot();
  }
  const std::string layer = vm->disk_layer();
  if (layer.empty()) throw Error(ErrorCode::conflict, "sandbox " + id_ + " has no disk to snapshot");
  const std::vector<std::string> chain = vmm::backing_chain(layer);
  if (chain.size() < 2)
    throw Error(ErrorCode::internal, "the disk layer of sandbox " + id_ + " has no backing");
  taken.disk_backing = chain[1];
  // Nothing is in flight on the channel from here until thaw.
  mux->quiesce(SteadyClock::now() + kGuestAnswer);
  try {
    taken.timing = vm->save_live_snapshot(state_path, [&] {
      std::error_code error;
      if (!std::filesystem::copy_file(layer, disk_path, error)) {
        throw Error(error.value() == ENOSPC ? ErrorCode::no_space : ErrorCode::vm,
                    "copying the disk of sandbox " + id_ + ": " + error.message());
      }
    });
  } catch (const Error&) {
    mux->thaw();
    throw;
  }
  mux->thaw();
  return taken;
}

}  // namespace airlock::engine

#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/error.h"
#include "vmm/qemu_spec.h"

namespace airlock::vmm {

struct KernelImage {
  std::string path;
  std::string initramfs;
  std::string machine;        // e.g. "microvm,acpi=off"
  std::string cmdline_extra;  // kernel-specific arguments
};

struct VmConfig {
  std::string name;
  Accel accel = Accel::tcg;
  KernelImage kernel;
  std::string rootfs;                 // read-only base image; empty boots without a root disk
  std::string rootfs_format = "raw";  // "raw", or "qcow2" for a template's disk
  // An empty qcow2 layer over `rootfs`, made once (see make_empty_layer):
  // copying it is cheaper than running qemu-img for every VM. Empty: qemu-img.
  std::string rootfs_empty_layer;
  // Spare virtual disk beyond `rootfs` for a fresh overlay (sparse: it costs
  // host space only once written); the guest grows its filesystem into it
  // when a run may write more than the image has free. A layer over a
  // template's disk inherits the template's size.
  uint64_t disk_room_bytes = 0;
  // Guest RAM in this file instead of anonymous memory (templates and clones).
  std::optional<MemoryFileSpec> memory_file;
  // Without a memory_file: anonymous RAM all the same, but as a backend named
  // as a clone's is, so that a clone's saved state (a user snapshot) loads.
  bool named_memory = false;
  // Start paused, waiting for restore_snapshot() instead of booting.
  bool restore = false;
  // With `restore`: the guest stays stopped once its state is loaded
  // (restore_snapshot returns then), never to run: a VM that only rewrites
  // a snapshot (its RAM into memory_file).
  bool stay_stopped = false;
  int memory_mb = 256;
  int vcpus = 1;
  std::string work_dir;  // private directory for this VM's files (overlay)
  bool probe_only = false;
  // The VM's end of its ethernet link (see QemuSpec::network_fd), owned by
  // the caller and inherited by QEMU; -1: no network device.
  int network_fd = -1;
  // Host directories exported read-only (virtio-9p); the guest mounts them.
  std::vector<SharedDirectory> shared_dirs;
  // Confinement layers (vmm/jail) not applied to this VM's QEMU: the host
  // lacks them and the user accepted weaker isolation. Empty: all of them.
  std::set<std::string> skipped_layers;
};

// Makes `layer`, an empty qcow2 layer over `base` for VmConfig::rootfs_empty_layer,
// if it is not there yet; atomic (built aside, then renamed). Throws Error(vm).
void make_empty_layer(const std::string& base, const std::string& base_format, const std::string& layer);

// What a live snapshot cost (Vm::save_live_snapshot).
struct LiveSnapshotTiming {
  int64_t paused_ms = 0;  // the guest did not run for this long
  int64_t total_ms = 0;   // from the first RAM page sent to the guest running again
  uint64_t state_bytes = 0;
};

// A running VM as the engine sees it: a channel to the agent, a way to notice
// that the VM is gone, and a destructor that leaves nothing behind.
class Vm {
 public:
  virtual ~Vm() = default;
  virtual int channel_fd() const = 0;  // host end of the agent's port (stream socket)
  virtual int exit_fd() const = 0;     // becomes readable once the VM has stopped
  // Guest console and VMM diagnostics; -1 if none. Call drain_console() when
  // it is readable: the VM must never block on a full pipe.
  virtual int console_fd() const = 0;
  virtual void drain_console() = 0;
  virtual std::string console_tail() const = 0;
  // Why the VM stopped ("qemu exited with code 1"), or nullopt while it runs.
  virtual std::optional<std::string> exit_reason() = 0;
  virtual void destroy() = 0;  // idempotent; also done by the destructor
  // Saves device state to `state_path` (RAM stays in the shared memory file)
  // and leaves the VM paused, never to run again: a template.
  virtual void save_snapshot(const std::string& state_path) = 0;
  // For a VM started with `restore`: loads the saved state and waits until
  // the guest runs again. `shared_memory_skipped`: the state was saved
  // without the shared RAM file (a template's), as save_snapshot does; a
  // live snapshot's holds all of its RAM.
  virtual void restore_snapshot(const std::string& state_path, std::chrono::milliseconds timeout,
                                bool shared_memory_skipped = true) = 0;

  // Stops and restarts the guest's vCPUs; its memory stays as it is.
  virtual void pause() { throw Error(ErrorCode::unavailable, "this VM cannot be paused"); }
  virtual void resume() { throw Error(ErrorCode::unavailable, "this VM cannot be resumed"); }
  // Saves RAM and device state to `state_path` while the guest runs (its
  // RAM is copied ahead, then again what it changed), stops it for the last
  // pages, calls `while_stopped` (to copy its disk: RAM and disk then agree),
  // finishes, and lets it run on. Throws Error(vm) and leaves the guest
  // running if any step fails.
  virtual LiveSnapshotTiming save_live_snapshot(const std::string& state_path,
                                                const std::function<void()>& while_stopped) {
    (void)state_path;
    (void)while_stopped;
    throw Error(ErrorCode::unavailable, "this VM cannot be snapshotted while it runs");
  }
  // The writable disk layer of this VM (a qcow2 file), or empty.
  virtual std::string disk_layer() const { return {}; }
};

class VmBackend {
 public:
  virtual ~VmBackend() = default;
  virtual std::unique_ptr<Vm> start(const VmConfig& config) = 0;
};

// The kernel command line every Airlock guest gets, for the given kernel.
std::string guest_cmdline(const VmConfig& config);

}  // namespace airlock::vmm

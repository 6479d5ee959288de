#pragma once

#include <optional>
#include <string>
#include <vector>

namespace airlock::vmm {

enum class Accel { kvm, tcg };
std::string_view to_string(Accel accel);

struct DriveSpec {
  std::string id;
  std::string path;
  std::string format;  // "qcow2" or "raw"
  bool read_only = false;
  // A throwaway layer: no flushes, the host may lose it on a crash and nobody cares.
  bool volatile_cache = false;
};

// Guest RAM in a file: a template writes it (shared), clones map it
// privately so they share every page they do not change.
struct MemoryFileSpec {
  std::string path;
  bool shared = false;
  // The file, opened and checked by its owner (borrowed, open until the VM
  // has started): the jail binds this open file at `path`, never whatever
  // the path names by then.
  int fd = -1;
};

// A host directory exported read-only to the guest over virtio-9p; the
// guest mounts it by `tag`.
struct SharedDirectory {
  std::string host_path;
  std::string tag;
  // The directory, opened without following symlinks and checked (borrowed,
  // as MemoryFileSpec::fd): the jail binds this one at `host_path`.
  int fd = -1;
};

// Everything that goes on a QEMU command line, as typed fields. The argv is
// built from this and never passes through a shell.
struct QemuSpec {
  std::string binary = "qemu-system-x86_64";
  std::string name;
  Accel accel = Accel::tcg;
  std::string machine = "microvm,acpi=off";
  int vcpus = 1;
  int memory_mb = 256;
  std::string kernel;
  std::string initramfs;
  std::string kernel_cmdline;
  std::optional<MemoryFileSpec> memory_file;
  bool named_memory = false;      // anonymous RAM as backend "mem" (VmConfig::named_memory)
  bool incoming = false;          // wait for a migration stream (restore) instead of booting
  bool stopped = false;           // -S: the guest does not run until told (after a restore too)
  std::vector<DriveSpec> drives;  // attached as virtio-blk in this order: vda, vdb, ...
  std::vector<SharedDirectory> shared_dirs;
  // File descriptors already open in the QEMU process (inherited at these
  // numbers), each one end of a connected socket pair held by the host.
  int console_fd = -1;  // guest serial console (and QEMU's own stderr)
  int agent_fd = -1;    // virtio-serial port named "airlock"
  int qmp_fd = -1;      // QMP monitor
  // The guest's ethernet link (virtio-net), length-prefixed frames on a
  // stream socket whose other end is the host's user-mode network stack.
  // -1: the guest has no network device at all.
  int network_fd = -1;
  std::string sandbox;  // QEMU's seccomp sandbox (-sandbox), empty: off

  std::vector<std::string> to_argv() const;
};

}  // namespace airlock::vmm

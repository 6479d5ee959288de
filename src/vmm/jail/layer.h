#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::vmm::jail {

// A file or directory QEMU opens by `path`, already opened (and checked) by
// the engine: the jail binds the open file at that path and gives it to the
// VMM uid through the descriptor, so a path swapped for a symlink after the
// check changes nothing. `fd` is borrowed and must stay open until the Jail
// is constructed.
struct OpenedPath {
  std::string path;
  int fd = -1;
};

// Which unprivileged user a jailed process runs as (credentials.cc).
enum class JailUser { vmm, netstack };

// What one QEMU process (or a guest's network stack) needs from its jail: the files it opens by path and
// the sizes its limits are derived from. Built by the backend from a VmConfig.
struct JailPlan {
  std::string name;                          // unique among live VMs of this host (cgroup name)
  std::string work_dir;                      // the VM's private directory; the jail root is made in it
  std::vector<std::string> read_only_files;  // kernel, initramfs, backing images (the operator's cache)
  std::vector<OpenedPath> writable_files;    // overlay, a template's RAM file: given to the VMM uid
  // A template's RAM file that a clone maps copy-on-write: bound writable
  // (QEMU 7.2 opens it read-write even for a private mapping), never chowned.
  std::vector<OpenedPath> mapped_files;
  std::vector<OpenedPath> read_only_dirs;  // shared directories (virtio-9p exports)
  std::vector<std::string> devices;        // e.g. /dev/kvm
  int vcpus = 1;
  int memory_mb = 256;
  uint64_t max_file_bytes = 0;  // the largest file QEMU may need to write
  JailUser user = JailUser::vmm;
  // Keep the host's network namespace: only a `full` network stack, which
  // opens the guest's connections itself, has this.
  bool host_network = false;
  // A small writable tmpfs of the process's own at this path (its sockets).
  std::string scratch_dir;
};

// The uid and gid a jailed process runs as (see credentials.cc for why these).
uid_t jail_uid(JailUser user = JailUser::vmm);
gid_t jail_gid(JailUser user = JailUser::vmm);

// One confinement layer of the QEMU process, in its own file, with the same
// verbs as the others (nsjail's mnt.cc/net.cc/cgroup2.cc model):
//   probe()   at engine start: can this host apply the layer? (nullopt: yes)
//             A verdict that costs a process spawn may be cached in cache_dir.
//   prepare() in the parent before the spawn: create what the layer needs;
//             the destructor removes it again, on every path
//   enter()   in the child between fork and exec: async-signal-safe calls only
class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string_view name() const = 0;
  virtual std::optional<std::string> probe(const std::string& cache_dir) const = 0;
  virtual void prepare(const JailPlan& plan) = 0;
  // Returns nullptr, or the failed operation with errno set.
  virtual const char* enter() const noexcept = 0;
  // CLONE_NEW* flags the child must be created with.
  virtual uint64_t clone_flags() const { return 0; }
  // Descriptors enter() uses, as {number in the child, descriptor here}
  // (SpawnOptions::fds); enter() closes them before QEMU starts.
  virtual std::vector<std::pair<int, int>> inherited_fds() const { return {}; }
  // The value of QEMU's -sandbox option, if this layer uses it.
  virtual std::string qemu_sandbox() const { return {}; }
};

std::unique_ptr<Layer> make_cgroup();
std::unique_ptr<Layer> make_namespaces();
std::unique_ptr<Layer> make_jail_dir();
std::unique_ptr<Layer> make_rlimits();
std::unique_ptr<Layer> make_credentials();
std::unique_ptr<Layer> make_seccomp();

}  // namespace airlock::vmm::jail

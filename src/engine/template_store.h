#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/unique_fd.h"

namespace airlock::engine {

// Where one template snapshot lives: the device state (a migration stream),
// the disk as it was at the snapshot (a qcow2 layer clones stack on), and the
// guest RAM file (on tmpfs) that clones map copy-on-write.
struct TemplatePaths {
  std::string dir;
  std::string state;
  std::string disk;
  std::string memory;
};

// How much host RAM (tmpfs) a TemplateStore's RAM files may take together,
// and how long a template may go unused; 0 bytes: no budget.
struct TemplateLimits {
  uint64_t memory_budget_bytes = 0;
  std::chrono::hours max_unused{24 * 7};
};

// Template snapshots on disk, one per profile and recipe: `name` is
// "<profile>-<hash of everything the snapshot depends on>". A template is
// built in a private directory and renamed into place, so a half-built one is
// never found; builds of one template are serialised by its own lock; a
// template found broken is discarded and rebuilt by the next run.
//
// RAM files are the one part on a shared tmpfs (/dev/shm), where any local
// user can create names. They live in a directory of this store's own, made
// with an unguessable name (mkdtemp, mode 0700) and recorded in the cache: a
// name planted in /dev/shm is never opened, and a directory found there is
// used only if lstat says it is ours and private. Inside it files are created
// O_EXCL|O_NOFOLLOW, and a template's RAM file is used only if it is a
// regular file with one link, the expected owner and mode 0600.
class TemplateStore {
 public:
  // `root`: the templates directory in the cache; `memory_base`: a tmpfs
  // (RAM files vanish at reboot, which find() notices); `memory_owner`: the
  // uid a finished RAM file must belong to (QEMU's jail uid, which the jail
  // gives it while the template is built; this process's own without it).
  using Limits = TemplateLimits;

  TemplateStore(std::string root, std::string memory_base, uid_t memory_owner, Limits limits = {});

  std::optional<TemplatePaths> find(const std::string& name) const;
  // The template's RAM file, opened and checked (for a clone to map), and
  // the template marked used. The descriptor holds a shared lock: while it is
  // open (keep it as long as the VM lives) the template is never evicted.
  // Throws Error(vm) naming what is wrong with it.
  UniqueFd open_memory(const std::string& name) const;

  struct Stats {
    int templates = 0;
    uint64_t memory_bytes = 0;  // RAM files, as tmpfs holds them
    uint64_t memory_budget_bytes = 0;
    uint64_t evictions = 0;  // by this process
  };
  Stats stats() const;
  // Builds the template unless another process just did. `build` fills the
  // given in-progress paths (state, disk, memory); `memory_fd` is the RAM
  // file, already created, that QEMU must be given (VmConfig::memory_file).
  // Older templates of the same profile (`name` up to its last '-') are
  // removed. Throws Error(unavailable) if another build of this template
  // holds its lock for longer than `wait`.
  TemplatePaths create(const std::string& name,
                       const std::function<void(const TemplatePaths&, int memory_fd)>& build,
                       std::chrono::seconds wait = std::chrono::seconds(300));
  void discard(const std::string& name);
  // Removes every template of this store, its RAM files and their directory.
  void discard_all();

  // The private directory holding the RAM files (for tests and diagnostics).
  const std::string& memory_dir() const { return memory_dir_; }

 private:
  TemplatePaths paths_for(const std::string& dir, const std::string& name) const;
  UniqueFd lock_store() const;
  UniqueFd lock_template(const std::string& name, std::chrono::seconds wait) const;
  void open_memory_dir(const std::string& memory_base);
  void remove_orphaned_memory(const std::string& memory_base);
  // Why `info` is not an acceptable template RAM file, or nullopt.
  std::optional<std::string> memory_file_problem(const struct stat& info) const;
  // With the store locked: removes templates unused for longer than
  // Limits::max_unused, then the least recently used until the RAM files fit
  // the budget; never `keep`, never one a live VM maps.
  void evict(const std::string& keep);
  // Removes a template unless a VM maps its RAM file; true if removed.
  bool remove_if_unused(const std::string& name);

  std::string root_;
  uid_t memory_owner_;
  Limits limits_;
  std::atomic<uint64_t> evictions_{0};
  std::string memory_dir_;
  UniqueFd memory_dir_fd_;
};

// A stable 64-bit FNV-1a hash as 16 hex digits, for cache keys.
std::string stable_hash(const std::string& text);

}  // namespace airlock::engine

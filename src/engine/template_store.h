#pragma once

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

// Template snapshots on disk, one per profile and recipe: `name` is
// "<profile>-<hash of everything the snapshot depends on>". A template is
// built in a private directory and renamed into place, so a half-built one is
// never found; builds are serialised by a lock; a template found broken is
// discarded and rebuilt by the next run.
class TemplateStore {
 public:
  // `root`: the templates directory in the cache; `memory_dir`: a tmpfs
  // (RAM files vanish at reboot, which find() notices).
  TemplateStore(std::string root, std::string memory_dir);

  std::optional<TemplatePaths> find(const std::string& name) const;
  // Builds the template unless another process just did. `build` fills the
  // given in-progress paths (state, disk, memory) or throws. Older templates
  // of the same profile (`name` up to its last '-') are removed.
  TemplatePaths create(const std::string& name, const std::function<void(const TemplatePaths&)>& build);
  void discard(const std::string& name);
  // Removes every template of this store, RAM files included.
  void discard_all();

 private:
  TemplatePaths paths_for(const std::string& dir, const std::string& name) const;
  UniqueFd lock() const;
  std::string memory_prefix() const;

  std::string root_;
  std::string memory_dir_;
};

// A stable 64-bit FNV-1a hash as 16 hex digits, for cache keys.
std::string stable_hash(const std::string& text);

}  // namespace airlock::engine

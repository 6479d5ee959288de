#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/child_process.h"
#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

struct LayerStatus {
  std::string name;
  bool available = true;
  std::string reason;  // why not, when unavailable
};

// Every layer, in order, with whether this host can apply it. Run once at
// engine start; also removes cgroups left by processes that were killed.
std::vector<LayerStatus> probe_layers(const std::string& cache_dir);

// "cgroup (reason); seccomp (reason)" for the unavailable ones; empty if none.
std::string describe_missing(const std::vector<LayerStatus>& layers);

// The confinement of one QEMU process: every layer not in `skipped`,
// prepared for `plan`. Destroy it only after the process has been reaped:
// the destructor removes the cgroup and the jail directory.
class Jail {
 public:
  Jail(const JailPlan& plan, const std::set<std::string>& skipped);
  Jail(const Jail&) = delete;
  Jail& operator=(const Jail&) = delete;
  ~Jail();

  // Sets the spawn's namespaces and the step that enters the jail in the child.
  void configure(SpawnOptions& options) const;
  std::string qemu_sandbox() const;
  bool applies(std::string_view layer) const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
};

}  // namespace airlock::vmm::jail

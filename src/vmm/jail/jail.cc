#include "vmm/jail/jail.h"

#include <algorithm>

namespace airlock::vmm::jail {

namespace {

// The layers in the order the child enters them; each relies on the ones
// before it (nsjail's contain.cc). The namespaces themselves are made by the
// clone, before any of these run.
std::vector<std::unique_ptr<Layer>> all_layers() {
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(make_cgroup());       // joined while the host's /sys/fs/cgroup is still visible
  layers.push_back(make_namespaces());   // mount, pid, ipc, uts, net: made by clone3
  layers.push_back(make_jail_dir());     // needs the private mount namespace and still root
  layers.push_back(make_rlimits());      // lowered while still privileged
  layers.push_back(make_credentials());  // the last privileged step: become the jail uid
  layers.push_back(make_seccomp());      // no_new_privs, our filter; QEMU adds its -sandbox
  return layers;
}

}  // namespace

std::vector<LayerStatus> probe_layers(const std::string& cache_dir) {
  std::vector<LayerStatus> statuses;
  for (const auto& layer : all_layers()) {
    auto missing = layer->probe(cache_dir);
    statuses.push_back({std::string(layer->name()), !missing, missing.value_or("")});
  }
  return statuses;
}

std::string describe_missing(const std::vector<LayerStatus>& layers) {
  std::string text;
  for (const auto& layer : layers) {
    if (layer.available) continue;
    if (!text.empty()) text += "; ";
    text += layer.name + " (" + layer.reason + ")";
  }
  return text;
}

Jail::Jail(const JailPlan& plan, const std::set<std::string>& skipped) {
  // Without its own mount namespace the jail directory would be mounted on the host.
  const bool no_mount_ns = skipped.count("namespaces") > 0;
  for (auto& layer : all_layers()) {
    if (skipped.count(std::string(layer->name()))) continue;
    if (no_mount_ns && layer->name() == "jail_dir") continue;
    // Prepared one by one: if one throws, those before it are undone by their destructors.
    layer->prepare(plan);
    layers_.push_back(std::move(layer));
  }
}

Jail::~Jail() {
  // Undo in reverse order of preparation.
  while (!layers_.empty()) layers_.pop_back();
}

void Jail::configure(SpawnOptions& options) const {
  for (const auto& layer : layers_) {
    options.namespaces |= layer->clone_flags();
    for (const auto& mapping : layer->inherited_fds()) options.fds.push_back(mapping);
  }
  options.before_exec = [this]() -> const char* {
    for (const auto& layer : layers_) {
      if (const char* failed = layer->enter()) return failed;
    }
    return nullptr;
  };
}

std::string Jail::qemu_sandbox() const {
  for (const auto& layer : layers_) {
    if (auto sandbox = layer->qemu_sandbox(); !sandbox.empty()) return sandbox;
  }
  return {};
}

bool Jail::applies(std::string_view layer) const {
  return std::any_of(layers_.begin(), layers_.end(), [layer](const auto& l) { return l->name() == layer; });
}

}  // namespace airlock::vmm::jail

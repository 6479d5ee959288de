#pragma once

#include <string>

#include "vmm/qemu_spec.h"
#include "vmm/vm_backend.h"

namespace airlock::vmm {

enum class AccelChoice { automatic, kvm, tcg };
AccelChoice parse_accel_choice(const std::string& text);  // "auto" | "kvm" | "tcg"

struct AccelDecision {
  Accel accel = Accel::tcg;
  std::string reason;       // why this accelerator, for the user's notice
  bool probed_now = false;  // a probe VM was booted for this decision
};

// KVM is used only if a probe VM with our real kernel and agent actually
// boots under it and QEMU confirms KVM is enabled: an openable /dev/kvm is not
// enough (nested setups exist where it opens and no stock kernel boots). The
// verdict is cached under cache_dir, keyed by host kernel, QEMU binary and
// guest kernel, because a failed probe can cost seconds.
// `work_dir` is a scratch directory for the probe VM, which is confined like
// any VM but for `skipped_layers`.
AccelDecision choose_accel(AccelChoice choice, const KernelImage& kernel, const std::string& cache_dir,
                           const std::string& work_dir, const std::set<std::string>& skipped_layers);

}  // namespace airlock::vmm

// Layer: resource limits of the QEMU process. Not the address space
// (RLIMIT_AS): QEMU reserves far more than it uses (guest RAM, a 1 GiB TCG
// translation buffer, thread stacks), and the cgroup bounds what it really
// uses. Not RLIMIT_NPROC either: it counts every process of the uid, which all
// VMs share; the cgroup's pids.max is the per-VM bound.
#include <sys/resource.h>

#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

namespace {

struct Limit {
  int resource;
  rlim_t value;
  const char* op;
};

// QEMU needs a few dozen fds (images, eventfds, the channels).
constexpr rlim_t kMaxFds = 1024;
// Slack above the largest file for qcow2 metadata.
constexpr uint64_t kFileSlackBytes = 64ULL << 20;

class Rlimits final : public Layer {
 public:
  std::string_view name() const override { return "rlimits"; }

  // Lowering a limit is always allowed.
  std::optional<std::string> probe(const std::string& /*cache_dir*/) const override { return std::nullopt; }

  void prepare(const JailPlan& plan) override {
    limits_ = {
        {RLIMIT_NOFILE, kMaxFds, "setrlimit(RLIMIT_NOFILE)"},
        // A crashing VMM must not dump guest memory to disk.
        {RLIMIT_CORE, 0, "setrlimit(RLIMIT_CORE)"},
        // No file QEMU writes (overlay, template RAM, snapshot state) may
        // outgrow what the VM is given: a runaway cannot fill the host disk.
        {RLIMIT_FSIZE, plan.max_file_bytes + kFileSlackBytes, "setrlimit(RLIMIT_FSIZE)"},
        // Nothing of QEMU's needs locked memory.
        {RLIMIT_MEMLOCK, 0, "setrlimit(RLIMIT_MEMLOCK)"},
    };
  }

  const char* enter() const noexcept override {
    for (const auto& limit : limits_) {
      rlimit value{limit.value, limit.value};
      if (::setrlimit(limit.resource, &value) < 0) return limit.op;
    }
    return nullptr;
  }

 private:
  std::vector<Limit> limits_;
};

}  // namespace

std::unique_ptr<Layer> make_rlimits() { return std::make_unique<Rlimits>(); }

}  // namespace airlock::vmm::jail

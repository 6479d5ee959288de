// Layer: system call filtering. QEMU's own seccomp sandbox (-sandbox on)
// knows what QEMU needs and denies the rest of its categories: obsolete
// calls, regaining privileges (set*uid), spawning processes, changing its
// scheduling and resource limits. Before it, we set no_new_privs (no setuid
// binary or file capability can give the process privileges again) and
// install our own small deny-list of calls that only matter to someone who
// has taken QEMU over and wants out: mounts, namespaces, ptrace, kernel
// modules, keyrings, BPF, and the like. Both filters stay for QEMU's lifetime.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

namespace {

constexpr const char* kQemuSandbox =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

// Calls QEMU never makes in our configuration, each answered with EPERM.
constexpr int kDenied[] = {
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_unshare,
    SYS_setns,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_userfaultfd,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_quotactl,
    SYS_syslog,
    SYS_fsopen,
    SYS_fsmount,
    SYS_move_mount,
    SYS_open_tree,
};

class Seccomp final : public Layer {
 public:
  std::string_view name() const override { return "seccomp"; }

  std::optional<std::string> probe(const std::string& cache_dir) const override {
    if (::prctl(PR_GET_SECCOMP) < 0) return std::string("prctl(PR_GET_SECCOMP): ") + std::strerror(errno);
    // Asking QEMU costs a spawn (~0.1 s on every CLI run): the answer is kept
    // per QEMU binary version.
    const std::string cache_file = cache_dir + "/qemu-sandbox-probe";
    const std::string key = file_identity(find_program("qemu-system-x86_64").value_or("qemu-system-x86_64"));
    try {
      if (read_file(cache_file, 4096) == key) return std::nullopt;
    } catch (const Error&) {
    }
    // QEMU parses -sandbox before acting on -version: a build without
    // seccomp support fails here.
    auto result = run_command({"qemu-system-x86_64", "-sandbox", kQemuSandbox, "-version"},
                              {"PATH=/usr/local/bin:/usr/bin:/bin"}, std::chrono::seconds(10));
    if (result.status.exit_code != 0) return "qemu-system-x86_64 -sandbox: " + result.output;
    try {
      make_directories(cache_dir);
      write_file(cache_file, key, 0600);
    } catch (const Error&) {
      // An unwritable cache only means asking again next time.
    }
    return std::nullopt;
  }

  void prepare(const JailPlan&) override {
    // x86-64 only: any other architecture's calls (x32, i386 via int 0x80) are killed.
    filter_ = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
               BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
               BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
               BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
               BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),  // the x32 ABI
               BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)};
    for (int nr : kDenied) {
      filter_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
      filter_.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
    }
    filter_.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    program_ = {static_cast<unsigned short>(filter_.size()), filter_.data()};
  }

  const char* enter() const noexcept override {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return "prctl(PR_SET_NO_NEW_PRIVS)";
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program_) < 0) return "prctl(PR_SET_SECCOMP)";
    return nullptr;
  }

  std::string qemu_sandbox() const override { return kQemuSandbox; }

 private:
  std::vector<sock_filter> filter_;
  sock_fprog program_{};
};

}  // namespace

std::unique_ptr<Layer> make_seccomp() { return std::make_unique<Seccomp>(); }

}  // namespace airlock::vmm::jail

// Layer: new mount, PID, IPC, UTS and network namespaces for QEMU. It sees
// only its own processes (it is PID 1 of its namespace), has no network
// interface but a down loopback, no host IPC objects, and a mount table of
// its own in which the jail directory becomes its root (jail_dir.cc). A
// `full` network stack keeps the host's network namespace (host_network):
// it must open the guest's connections itself.
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

namespace {

constexpr uint64_t kNamespaces = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
constexpr char kHostname[] = "airlock-vmm";

class Namespaces final : public Layer {
 public:
  std::string_view name() const override { return "namespaces"; }

  std::optional<std::string> probe(const std::string& /*cache_dir*/) const override {
    // The real test: a child created in the namespaces, which exits at once.
    clone_args args{};
    args.flags = kNamespaces;
    args.exit_signal = SIGCHLD;
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) ::_exit(0);
    if (pid < 0)
      return std::string("clone3(CLONE_NEWNS|NEWPID|NEWIPC|NEWUTS|NEWNET): ") + std::strerror(errno);
    int status = 0;
    while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
    return std::nullopt;
  }

  void prepare(const JailPlan& plan) override { host_network_ = plan.host_network; }

  uint64_t clone_flags() const override { return host_network_ ? kNamespaces & ~CLONE_NEWNET : kNamespaces; }

  const char* enter() const noexcept override {
    // The guest's name of the host is not QEMU's business.
    if (::sethostname(kHostname, sizeof kHostname - 1) < 0) return "sethostname(\"airlock-vmm\")";
    return nullptr;
  }

 private:
  bool host_network_ = false;
};

}  // namespace

std::unique_ptr<Layer> make_namespaces() { return std::make_unique<Namespaces>(); }

}  // namespace airlock::vmm::jail

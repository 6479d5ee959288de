// Layer: QEMU runs as a dedicated unprivileged user, not as root and not as
// the user of the engine: a VMM that is taken over cannot read the engine's
// files, signal or ptrace the engine, or use root's privileges.
//
// The uid: the account "airlock-vmm" if the host has one (the way to choose
// another), else 2147483000: above every range Debian allocates (up to 65534)
// and above the usual /etc/subuid and systemd container ranges, in the block
// systemd documents as unused (1879048192-2147483647), and positive as a
// signed int. One uid for every VM: VMs cannot see one
// another anyway (each has its own PID and mount namespace), and a per-VM uid
// would need an allocator shared between processes. Files QEMU must write
// (the overlay, the RAM file) are given to this uid; everything else it reads
// is world-readable.
//
// A guest's network stack (airlock-netstack) runs as a second such user,
// "airlock-net" or 2147483001: it handles a guest's raw frames as QEMU does,
// and neither of the two, if taken over, should own the other's files or
// processes.
//
// Without root the engine cannot switch uids: the layer is reported missing.
// (A user namespace mapping our uid would give namespaces but not a different
// uid; that is future work.)
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

namespace {

constexpr uid_t kDefaultId = 2147483000;

const char* account_name(JailUser user) { return user == JailUser::vmm ? "airlock-vmm" : "airlock-net"; }
uid_t default_id(JailUser user) { return kDefaultId + (user == JailUser::vmm ? 0 : 1); }

class Credentials final : public Layer {
 public:
  std::string_view name() const override { return "credentials"; }

  std::optional<std::string> probe(const std::string& /*cache_dir*/) const override {
    if (::geteuid() != 0) return "switching to the unprivileged VMM user needs root";
    return std::nullopt;
  }

  void prepare(const JailPlan& plan) override {
    uid_ = jail_uid(plan.user);
    gid_ = jail_gid(plan.user);
    // /dev/kvm is usually root:kvm 0660: QEMU gets that group and no other.
    for (const auto& device : plan.devices) {
      struct stat info {};
      if (::stat(device.c_str(), &info) == 0) groups_.push_back(info.st_gid);
    }
    // Through the open file: a path could by now name something else.
    for (const auto& file : plan.writable_files) {
      if (::fchown(file.fd, uid_, gid_) < 0) throw_errno("fchown", file.path);
    }
    groups_op_ = "setgroups(" + std::to_string(groups_.size()) + " groups)";
    gid_op_ = "setresgid(" + std::to_string(gid_) + ")";
    uid_op_ = "setresuid(" + std::to_string(uid_) + ")";
  }

  const char* enter() const noexcept override {
    // Raw syscalls: glibc's set*id wrappers signal every thread glibc thinks
    // exists, and after a raw clone3 those threads are not there.
    if (::syscall(SYS_setgroups, groups_.size(), groups_.data()) < 0) return groups_op_.c_str();
    if (::syscall(SYS_setresgid, gid_, gid_, gid_) < 0) return gid_op_.c_str();
    // Leaving uid 0 for good also clears every capability.
    if (::syscall(SYS_setresuid, uid_, uid_, uid_) < 0) return uid_op_.c_str();
    return nullptr;
  }

 private:
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;
  std::string groups_op_;
  std::string gid_op_;
  std::string uid_op_;
};

}  // namespace

uid_t jail_uid(JailUser user) {
  const passwd* account = ::getpwnam(account_name(user));
  return account ? account->pw_uid : default_id(user);
}

gid_t jail_gid(JailUser user) {
  const passwd* account = ::getpwnam(account_name(user));
  return account ? account->pw_gid : default_id(user);
}

std::unique_ptr<Layer> make_credentials() { return std::make_unique<Credentials>(); }

}  // namespace airlock::vmm::jail

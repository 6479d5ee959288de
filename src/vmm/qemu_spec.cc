#include "vmm/qemu_spec.h"

#include "common/error.h"

namespace airlock::vmm {

std::string_view to_string(Accel accel) { return accel == Accel::kvm ? "kvm" : "tcg"; }

namespace {

// Megabytes of TCG translation cache (see the -accel option below).
constexpr int kTcgCacheMb = 128;

// QEMU option values are comma-separated; a literal comma is written twice.
std::string escape_option_value(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    escaped += c;
    if (c == ',') escaped += ',';
  }
  return escaped;
}

}  // namespace

std::vector<std::string> QemuSpec::to_argv() const {
  if (kernel.empty()) throw Error(ErrorCode::internal, "QemuSpec: no kernel");
  if (agent_fd < 0 || qmp_fd < 0 || console_fd < 0) {
    throw Error(ErrorCode::internal, "QemuSpec: console, agent and QMP channels are required");
  }
  std::vector<std::string> argv = {
      binary,
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-name",
      escape_option_value(name),
      "-M",
      memory_file || named_memory ? machine + ",memory-backend=mem" : machine,
      "-accel",
      // TCG's translation cache is 1 GiB by default, and its pages count
      // once touched: a sandbox that lives through hundreds of execs grows
      // past its cgroup's memory limit and is killed. 128 MiB holds what our
      // guests run (measured: no slower), and bounds the VMM's memory.
      accel == Accel::kvm ? std::string("kvm") : std::string("tcg,tb-size=") + std::to_string(kTcgCacheMb),
      // Under KVM the guest sees the real CPU; under TCG "max" emulates every
      // feature QEMU knows (rdrand included, which seeds the guest RNG).
      "-cpu",
      accel == Accel::kvm ? "host" : "max",
      "-smp",
      std::to_string(vcpus),
      "-m",
      std::to_string(memory_mb),
      "-kernel",
      escape_option_value(kernel),
      "-append",
      kernel_cmdline,
      "-chardev",
      "socket,id=console,fd=" + std::to_string(console_fd),
      "-serial",
      "chardev:console",
      "-device",
      "virtio-serial-device,max_ports=2",
      "-chardev",
      "socket,id=agent,fd=" + std::to_string(agent_fd),
      "-device",
      "virtserialport,chardev=agent,name=airlock",
      "-chardev",
      "socket,id=qmp,fd=" + std::to_string(qmp_fd),
      "-mon",
      "chardev=qmp,mode=control",
  };
  if (network_fd >= 0) {
    argv.push_back("-netdev");
    argv.push_back("socket,id=net,fd=" + std::to_string(network_fd));
    argv.push_back("-device");
    argv.push_back("virtio-net-device,netdev=net,mac=52:54:00:12:34:56");
  }
  if (memory_file) {
    argv.push_back("-object");
    argv.push_back("memory-backend-file,id=mem,size=" + std::to_string(memory_mb) +
                   "M,mem-path=" + escape_option_value(memory_file->path) +
                   (memory_file->shared ? ",share=on" : ",share=off"));
  }
  if (!memory_file && named_memory) {
    argv.push_back("-object");
    argv.push_back("memory-backend-ram,id=mem,size=" + std::to_string(memory_mb) + "M");
  }
  if (!sandbox.empty()) {
    argv.push_back("-sandbox");
    argv.push_back(sandbox);
  }
  if (incoming) {
    argv.push_back("-incoming");
    argv.push_back("defer");
  }
  if (stopped) argv.push_back("-S");
  if (!initramfs.empty()) {
    argv.push_back("-initrd");
    argv.push_back(escape_option_value(initramfs));
  }
  for (size_t i = 0; i < shared_dirs.size(); ++i) {
    const std::string id = "share" + std::to_string(i);
    // security_model=none: files keep their host owners and modes, and QEMU
    // (an unprivileged user in its jail) can read only what others may read.
    argv.push_back("-fsdev");
    argv.push_back("local,id=" + id + ",path=" + escape_option_value(shared_dirs[i].host_path) +
                   ",security_model=none,readonly=on");
    argv.push_back("-device");
    argv.push_back("virtio-9p-device,fsdev=" + id + ",mount_tag=" + shared_dirs[i].tag);
  }
  for (const auto& drive : drives) {
    std::string options =
        "file=" + escape_option_value(drive.path) + ",if=none,id=" + drive.id + ",format=" + drive.format;
    if (drive.read_only) options += ",read-only=on";
    if (drive.volatile_cache) options += ",cache=unsafe";
    argv.push_back("-drive");
    argv.push_back(options);
    argv.push_back("-device");
    argv.push_back("virtio-blk-device,drive=" + drive.id);
  }
  return argv;
}

}  // namespace airlock::vmm

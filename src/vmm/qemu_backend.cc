#include "vmm/qemu_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/io.h"
#include "vmm/disk_image.h"
#include "vmm/host_clock.h"

namespace airlock::vmm {

namespace {

constexpr size_t kConsoleTailBytes = 16 * 1024;

// The numbers QEMU sees its inherited channel fds at.
constexpr int kConsoleFd = 3;
constexpr int kAgentFd = 4;
constexpr int kQmpFd = 5;
constexpr int kNetworkFd = 6;

// `size`: the overlay's virtual size in bytes; 0 keeps the base's.
void create_overlay(const std::string& base, const std::string& base_format, const std::string& overlay,
                    uint64_t size) {
  std::vector<std::string> arguments = {"create",    "-q", "-f", "qcow2", "-F",
                                        base_format, "-b", base, overlay};
  if (size > 0) arguments.push_back(std::to_string(size));
  run_qemu_img(arguments, "creating an overlay on " + base, std::chrono::seconds(10));
}

}  // namespace

void make_empty_layer(const std::string& base, const std::string& base_format, const std::string& layer) {
  if (::access(layer.c_str(), F_OK) == 0) return;
  const std::string building =
      layer + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(::gettid());
  create_overlay(base, base_format, building, 0);
  if (::rename(building.c_str(), layer.c_str()) < 0) {
    ::unlink(building.c_str());
    throw_errno("rename", layer);
  }
}

namespace {

// Everything QEMU opens by path for this VM, and the sizes its limits follow.
// `overlay_fd`: the overlay this backend made, opened.
jail::JailPlan jail_plan(const VmConfig& config, const std::string& overlay, int overlay_fd) {
  jail::JailPlan plan;
  plan.name = config.name;
  plan.work_dir = config.work_dir;
  plan.vcpus = config.vcpus;
  plan.memory_mb = config.memory_mb;
  plan.read_only_files = {config.kernel.path};
  if (!config.kernel.initramfs.empty()) plan.read_only_files.push_back(config.kernel.initramfs);
  plan.max_file_bytes = static_cast<uint64_t>(config.memory_mb) << 20;
  if (!overlay.empty()) {
    plan.writable_files.push_back({overlay, overlay_fd});
    for (const auto& image : backing_chain(config.rootfs)) plan.read_only_files.push_back(image);
    plan.max_file_bytes = std::max(plan.max_file_bytes, virtual_disk_size(overlay));
  }
  if (config.memory_file) {
    // The owner of the RAM file (the template store) made and checked it;
    // only a template's, written through a shared mapping, goes to the VMM uid.
    const MemoryFileSpec& memory = *config.memory_file;
    if (memory.fd < 0) throw Error(ErrorCode::internal, "RAM file " + memory.path + " was not opened");
    (memory.shared ? plan.writable_files : plan.mapped_files).push_back({memory.path, memory.fd});
  }
  if (config.accel == Accel::kvm) plan.devices.push_back("/dev/kvm");
  for (const auto& share : config.shared_dirs) {
    if (share.fd < 0)
      throw Error(ErrorCode::internal, "shared directory " + share.host_path + " was not opened");
    plan.read_only_dirs.push_back({share.host_path, share.fd});
  }
  return plan;
}

}  // namespace

std::string guest_cmdline(const VmConfig& config) {
  std::string cmdline =
      "console=ttyS0 quiet loglevel=1 panic=-1 reboot=t rdinit=/init random.trust_cpu=on "
      "cryptomgr.notests";
  // Without the TSC rate the guest calibrates against the emulated PIT and may hang.
  cmdline += " tsc_early_khz=" + std::to_string(host_tsc_khz());
  // Under TCG the emulated CPU claims no constant TSC, and a microvm has no
  // other clock to check it against, so the kernel would keep time by its
  // 4 ms tick: clock_gettime in steps of 4 ms and no high-resolution timers
  // (every timeout rounded up to a tick). QEMU's TSC follows the host's
  // clock, so it is trusted.
  if (config.accel == Accel::tcg) cmdline += " tsc=reliable";
  if (config.probe_only) cmdline += " airlock.probe=1";
  if (!config.kernel.cmdline_extra.empty()) cmdline += " " + config.kernel.cmdline_extra;
  return cmdline;
}

QemuVm::QemuVm(std::unique_ptr<jail::Jail> jail, ChildProcess process, UniqueFd channel, UniqueFd console,
               UniqueFd qmp)
    : jail_(std::move(jail)),
      process_(std::move(process)),
      channel_(std::move(channel)),
      console_(std::move(console)),
      qmp_socket_(std::move(qmp)) {
  set_nonblocking(console_.get());
}

QemuVm::~QemuVm() { destroy(); }

void QemuVm::drain_console() {
  if (!console_) return;
  char buffer[16384];
  for (int i = 0; i < 64; ++i) {
    std::optional<size_t> n;
    try {
      n = read_some(console_.get(), buffer, sizeof buffer);
    } catch (const Error&) {
      n = 0;
    }
    if (!n) return;
    if (*n == 0) {
      console_.reset();
      return;
    }
    console_tail_.append(buffer, *n);
    if (console_tail_.size() > kConsoleTailBytes) {
      console_tail_.erase(0, console_tail_.size() - kConsoleTailBytes);
    }
  }
}

std::optional<std::string> QemuVm::exit_reason() {
  auto status = process_.poll();
  if (!status) return std::nullopt;
  return "qemu " + status->describe();
}

QmpClient& QemuVm::qmp(std::chrono::milliseconds timeout) {
  if (!qmp_) {
    if (!qmp_socket_) throw Error(ErrorCode::vm, "QMP connection already used up");
    qmp_ = std::make_unique<QmpClient>(std::move(qmp_socket_), timeout);
  }
  return *qmp_;
}

void QemuVm::destroy() {
  // A throwaway VM has nothing worth a graceful shutdown: its disk layer is
  // discarded with it. SIGKILL is immediate and cannot be refused.
  if (process_.running()) {
    process_.kill(SIGKILL);
    try {
      process_.wait();
    } catch (const Error&) {
    }
  }
  drain_console();
  channel_.reset();
  console_.reset();
  qmp_.reset();
  qmp_socket_.reset();
  // Only now that QEMU is reaped can its cgroup go.
  if (!process_.running()) jail_.reset();
}

std::unique_ptr<Vm> QemuBackend::start(const VmConfig& config) { return start_qemu(config); }

std::unique_ptr<QemuVm> QemuBackend::start_qemu(const VmConfig& config) {
  QemuSpec spec;
  spec.name = config.name;
  spec.accel = config.accel;
  spec.machine = config.kernel.machine;
  spec.vcpus = config.vcpus;
  spec.memory_mb = config.memory_mb;
  spec.kernel = config.kernel.path;
  spec.initramfs = config.kernel.initramfs;
  spec.kernel_cmdline = guest_cmdline(config);
  spec.memory_file = config.memory_file;
  spec.named_memory = config.named_memory;
  spec.incoming = config.restore;
  spec.stopped = config.restore && config.stay_stopped;
  spec.shared_dirs = config.shared_dirs;
  std::string overlay;
  if (!config.rootfs.empty()) {
    overlay = config.work_dir + "/rootfs-overlay.qcow2";
    if (!config.rootfs_empty_layer.empty()) {
      std::error_code error;
      if (!std::filesystem::copy_file(config.rootfs_empty_layer, overlay, error)) {
        throw Error(ErrorCode::vm,
                    "copy the empty layer " + config.rootfs_empty_layer + ": " + error.message());
      }
    } else {
      create_overlay(
          config.rootfs, config.rootfs_format, overlay,
          config.disk_room_bytes > 0 ? virtual_disk_size(config.rootfs) + config.disk_room_bytes : 0);
    }
    spec.drives.push_back({"root", overlay, "qcow2", false, true});
  }
  UniqueFd overlay_fd;
  if (!overlay.empty()) {
    overlay_fd.reset(::open(overlay.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!overlay_fd) throw_errno("open", overlay);
  }
  const jail::JailPlan plan = jail_plan(config, overlay, overlay_fd.get());
  auto jail = std::make_unique<jail::Jail>(plan, config.skipped_layers);
  spec.sandbox = jail->qemu_sandbox();
  auto [console_host, console_vm] = make_socket_pair();
  auto [agent_host, agent_vm] = make_socket_pair();
  auto [qmp_host, qmp_vm] = make_socket_pair();
  spec.console_fd = kConsoleFd;
  spec.agent_fd = kAgentFd;
  spec.qmp_fd = kQmpFd;

  SpawnOptions options;
  options.fds = {{kConsoleFd, console_vm.get()},
                 {kAgentFd, agent_vm.get()},
                 {kQmpFd, qmp_vm.get()},
                 // QEMU's own complaints land beside the guest console, so a
                 // failed start can be explained with its last words.
                 {1, console_vm.get()},
                 {2, console_vm.get()}};
  if (config.network_fd >= 0) {
    spec.network_fd = kNetworkFd;
    options.fds.push_back({kNetworkFd, config.network_fd});
  }
  options.env = {};
  jail->configure(options);
  ChildProcess process = ChildProcess::spawn(spec.to_argv(), options);
  auto vm = std::make_unique<QemuVm>(std::move(jail), std::move(process), std::move(agent_host),
                                     std::move(console_host), std::move(qmp_host));
  vm->disk_layer_ = overlay;
  vm->stays_stopped_ = config.restore && config.stay_stopped;
  return vm;
}

namespace {

// Only RAM in a named shared file is left out of the stream (x-ignore-shared):
// the template's memory file already holds it, and clones map that file.
void ignore_shared_memory(QmpClient& qmp, bool ignore = true) {
  qmp.execute(
      "migrate-set-capabilities",
      {{"capabilities", nlohmann::json::array({{{"capability", "x-ignore-shared"}, {"state", ignore}}})}});
}

}  // namespace

void QemuVm::save_snapshot(const std::string& state_path) {
  UniqueFd state(::open(state_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!state) throw_errno("open", state_path);
  QmpClient& monitor = qmp();
  ignore_shared_memory(monitor);
  monitor.pass_fd("snapshot", state.get());
  monitor.execute("migrate", {{"uri", "fd:snapshot"}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto status = monitor.execute("query-migrate");
    const std::string phase = status.value("status", "");
    if (phase == "completed") break;
    if (phase == "failed" || phase == "cancelled") {
      throw Error(ErrorCode::vm, "saving the snapshot failed: " + status.value("error-desc", phase));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ErrorCode::vm, "saving the snapshot did not finish within 30 s");
    }
    ::usleep(2000);
  }
  if (::fsync(state.get()) < 0) throw_errno("fsync", state_path);
}

void QemuVm::restore_snapshot(const std::string& state_path, std::chrono::milliseconds timeout,
                              bool shared_memory_skipped) {
  UniqueFd state(::open(state_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!state) throw_errno("open", state_path);
  try {
    QmpClient& monitor = qmp();
    // Both sides of a stream must agree: x-ignore-shared adds fields to it.
    ignore_shared_memory(monitor, shared_memory_skipped);
    monitor.pass_fd("state", state.get());
    monitor.execute("migrate-incoming", {{"uri", "fd:state"}});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto status = monitor.execute("query-status");
      const std::string phase = status.value("status", "");
      if (status.value("running", false)) return;
      if (phase == "paused") {
        // Started with -S: loaded, and stopped as asked.
        if (stays_stopped_) return;
        // A state saved from a stopped VM (a snapshot rewritten by one
        // that never ran) loads stopped: it goes on from here.
        monitor.execute("cont");
        continue;
      }
      if (phase != "inmigrate" && phase != "prelaunch") {
        throw Error(ErrorCode::vm, "restoring the snapshot left the VM " + phase);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error(ErrorCode::vm, "restoring the snapshot did not finish in time");
      }
      ::usleep(1000);
    }
  } catch (const Error& e) {
    // QEMU usually explains a bad stream on its stderr before it exits.
    ::usleep(50'000);
    drain_console();
    std::string tail =
        console_tail_.size() > 400 ? console_tail_.substr(console_tail_.size() - 400) : console_tail_;
    throw Error(ErrorCode::vm, std::string(e.what()) + (tail.empty() ? "" : "; qemu: " + tail));
  }
}

}  // namespace airlock::vmm

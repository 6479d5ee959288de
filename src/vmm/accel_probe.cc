#include "vmm/accel_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "common/child_process.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "vmm/qemu_backend.h"

namespace airlock::vmm {

using nlohmann::json;

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(6);

std::string probe_key(const KernelImage& kernel) {
  utsname host{};
  ::uname(&host);
  auto qemu = find_program("qemu-system-x86_64");
  // Whether KVM works depends on the host kernel, QEMU and the guest kernel;
  // not on the initramfs, which changes with every build of the agent.
  return std::string(host.release) + "|" + host.version + "|" + file_identity(qemu.value_or("qemu")) + "|" +
         file_identity(kernel.path);
}

struct ProbeVerdict {
  bool usable = false;
  std::string reason;
};

// Boots the agent (no root disk) under KVM and waits for its hello.
ProbeVerdict run_probe(const KernelImage& kernel, const std::string& work_dir,
                       const std::set<std::string>& skipped_layers) {
  VmConfig config;
  config.name = "airlock-kvm-probe";
  config.accel = Accel::kvm;
  config.kernel = kernel;
  config.memory_mb = 128;
  config.work_dir = work_dir;
  config.probe_only = true;
  config.skipped_layers = skipped_layers;
  QemuBackend backend;
  std::unique_ptr<QemuVm> vm;
  try {
    vm = backend.start_qemu(config);
  } catch (const Error& e) {
    return {false, e.what()};
  }
  protocol::FrameDecoder decoder;
  const auto deadline = SteadyClock::now() + kProbeTimeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      return {false,
              "the probe VM did not boot within " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kProbeTimeout).count()) +
                  " s under KVM"};
    }
    pollfd fds[3] = {
        {vm->channel_fd(), POLLIN, 0}, {vm->exit_fd(), POLLIN, 0}, {vm->console_fd(), POLLIN, 0}};
    ::poll(fds, 3, static_cast<int>(left.count()));
    if (fds[2].revents) vm->drain_console();
    // QEMU's last words (e.g. an assertion about an MSR) say why better than we can.
    auto stopped = [&vm]() -> ProbeVerdict {
      pollfd exited{vm->exit_fd(), POLLIN, 0};
      ::poll(&exited, 1, 1000);
      vm->drain_console();
      std::string tail = vm->console_tail();
      while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
      if (tail.size() > 300) tail = tail.substr(tail.size() - 300);
      return {false, "the probe VM failed under KVM (" + vm->exit_reason().value_or("qemu stopped talking") +
                         (tail.empty() ? ")" : "): " + tail)};
    };
    if (fds[1].revents) return stopped();
    if (fds[0].revents) {
      char buffer[4096];
      auto n = read_some(vm->channel_fd(), buffer, sizeof buffer);
      if (n && *n == 0) return stopped();
      if (n) {
        try {
          decoder.feed(std::string_view(buffer, *n));
          if (auto frame = decoder.next()) {
            if (frame->type != protocol::FrameType::hello) return {false, "the probe VM sent no hello"};
            protocol::Hello::parse(frame->payload);
            break;
          }
        } catch (const Error& e) {
          return {false, std::string("the probe VM spoke garbage: ") + e.what()};
        }
      }
    }
  }
  try {
    json kvm = vm->qmp().execute("query-kvm");
    if (!kvm.value("enabled", false)) return {false, "QEMU reports KVM is not enabled"};
  } catch (const Error& e) {
    return {false, e.what()};
  }
  return {true, "a probe VM booted under KVM"};
}

}  // namespace

AccelChoice parse_accel_choice(const std::string& text) {
  if (text == "auto") return AccelChoice::automatic;
  if (text == "kvm") return AccelChoice::kvm;
  if (text == "tcg") return AccelChoice::tcg;
  throw Error(ErrorCode::invalid_argument, "unknown accelerator '" + text + "' (expected auto, kvm or tcg)");
}

AccelDecision choose_accel(AccelChoice choice, const KernelImage& kernel, const std::string& cache_dir,
                           const std::string& work_dir, const std::set<std::string>& skipped_layers) {
  if (choice == AccelChoice::tcg) return {Accel::tcg, "TCG was requested", false};

  UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  ProbeVerdict verdict;
  bool probed_now = false;
  if (!kvm) {
    verdict = {false, std::string("/dev/kvm cannot be opened: ") + std::strerror(errno)};
  } else {
    kvm.reset();
    const std::string cache_file = cache_dir + "/accel-probe.json";
    const std::string key = probe_key(kernel);
    try {
      json cached = json::parse(read_file(cache_file, 64 * 1024));
      if (cached.value("key", "") == key) {
        verdict = {cached.at("kvm_usable").get<bool>(), cached.at("reason").get<std::string>()};
      } else {
        throw Error(ErrorCode::not_found, "stale");
      }
    } catch (const std::exception&) {
      verdict = run_probe(kernel, work_dir, skipped_layers);
      probed_now = true;
      try {
        make_directories(cache_dir);
        const std::string temp = cache_file + ".tmp" + std::to_string(::getpid());
        write_file(temp, json{{"key", key}, {"kvm_usable", verdict.usable}, {"reason", verdict.reason}}.dump(
                             -1, ' ', false, json::error_handler_t::replace));
        if (::rename(temp.c_str(), cache_file.c_str()) < 0) ::unlink(temp.c_str());
      } catch (const Error&) {
        // An unwritable cache only means probing again next time.
      }
    }
  }
  if (verdict.usable) return {Accel::kvm, verdict.reason, probed_now};
  if (choice == AccelChoice::kvm) {
    throw Error(ErrorCode::unavailable, "KVM was requested but is not usable: " + verdict.reason);
  }
  return {Accel::tcg, "KVM is not usable (" + verdict.reason + "); using TCG software emulation", probed_now};
}

}  // namespace airlock::vmm

// Cold start benchmark (not a test): `airlock run --lang python 'print(1)'`,
// a fresh VM every time, against a plain QEMU boot of the same kernel with a
// trivial init, interleaved in one process so machine noise hits both.
// Prints medians, the ratio, and where a cold run spends its time.
//
//   build/bin/bench_cold_start [runs]      (default 7)

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/child_process.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "engine/images.h"
#include "engine/paths.h"
#include "vmm/host_clock.h"

extern char** environ;

namespace fs = std::filesystem;
using airlock::SteadyClock;
using nlohmann::json;

namespace {

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** entry = environ; *entry; ++entry) env.emplace_back(*entry);
  return env;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double ms_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

std::string make_trivial_initramfs(const airlock::TempDir& dir, const std::string& init_binary) {
  const std::string root = dir.file("root");
  fs::create_directories(root + "/dev");
  fs::copy_file(init_binary, root + "/init");
  const std::string archive = dir.file("trivial.cpio");
  auto result = airlock::run_command(
      {"sh", "-c", "cd \"$1\" && find . | cpio -o -H newc -R 0:0 --quiet > \"$2\"", "sh", root, archive},
      {"PATH=/usr/bin:/bin"}, std::chrono::seconds(30));
  if (result.status.exit_code != 0) throw airlock::Error(airlock::ErrorCode::io, "cpio: " + result.output);
  return archive;
}

double boot_trivial(const airlock::vmm::KernelImage& kernel, const std::string& initramfs) {
  const std::string cmdline =
      "console=ttyS0 quiet panic=-1 reboot=t rdinit=/init random.trust_cpu=on "
      "cryptomgr.notests tsc_early_khz=" +
      std::to_string(airlock::vmm::host_tsc_khz()) +
      (kernel.cmdline_extra.empty() ? "" : " " + kernel.cmdline_extra);
  auto start = SteadyClock::now();
  auto result = airlock::run_command({"qemu-system-x86_64",
                                      "-nodefaults",
                                      "-no-user-config",
                                      "-nographic",
                                      "-no-reboot",
                                      "-M",
                                      kernel.machine,
                                      "-accel",
                                      "tcg",
                                      "-cpu",
                                      "max",
                                      "-m",
                                      "256",
                                      "-kernel",
                                      kernel.path,
                                      "-initrd",
                                      initramfs,
                                      "-append",
                                      cmdline,
                                      "-serial",
                                      "stdio"},
                                     {}, std::chrono::seconds(60));
  double elapsed = ms_since(start);
  if (result.output.find("TRIVIAL-INIT-UP") == std::string::npos) {
    throw airlock::Error(airlock::ErrorCode::vm, "trivial init did not run: " + result.output);
  }
  return elapsed;
}

}  // namespace

int run_benchmark(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(5, std::atoi(argv[1])) : 7;
  const fs::path bin_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const std::string airlock_bin = (bin_dir / "airlock").string();
  auto catalog = airlock::engine::ImageCatalog::load(airlock::engine::find_manifest(""));
  const auto& kernel = catalog.kernel("");
  airlock::TempDir scratch = airlock::TempDir::create(airlock::engine::default_runtime_dir(), "run-bench-");
  const std::string initramfs = make_trivial_initramfs(scratch, (bin_dir / "bench_trivial_init").string());

  std::vector<double> baseline, cold, setup, boot, execute, total;
  // One untimed run each: the accelerator probe verdict and page cache warm up.
  boot_trivial(kernel, initramfs);
  airlock::run_command({airlock_bin, "run", "--lang", "python", "print(1)"}, current_environment(),
                       std::chrono::seconds(60));
  for (int i = 0; i < runs; ++i) {
    baseline.push_back(boot_trivial(kernel, initramfs));
    auto start = SteadyClock::now();
    auto result = airlock::run_command({airlock_bin, "run", "--json", "--lang", "python", "print(1)"},
                                       current_environment(), std::chrono::seconds(60));
    cold.push_back(ms_since(start));
    const size_t brace = result.output.find('{');
    json parsed = json::parse(brace == std::string::npos ? "" : result.output.substr(brace), nullptr, false);
    if (parsed.is_discarded() || parsed["stdout"] != "1\n")
      throw airlock::Error(airlock::ErrorCode::internal, "bad run: " + result.output);
    setup.push_back(parsed["timing"]["setup_ms"].get<double>());
    boot.push_back(parsed["timing"]["boot_ms"].get<double>());
    execute.push_back(parsed["timing"]["execute_ms"].get<double>());
    total.push_back(parsed["timing"]["total_ms"].get<double>());
  }
  const double teardown = median(total) - median(setup) - median(boot) - median(execute);
  std::printf("cold start, %d runs each, medians (kernel: %s, accel: tcg baseline)\n", runs,
              kernel.path.c_str());
  std::printf("  baseline: plain QEMU boot, trivial init, to exit   %8.1f ms\n", median(baseline));
  std::printf("  airlock run --lang python 'print(1)', wall time    %8.1f ms\n", median(cold));
  std::printf("  ratio airlock / baseline                            %8.2fx\n",
              median(cold) / median(baseline));
  std::printf("  breakdown (engine timing, medians):\n");
  std::printf("    setup   (validate, images, overlay, spawn)       %8.1f ms\n", median(setup));
  std::printf("    boot    (QEMU start -> agent hello)               %8.1f ms\n", median(boot));
  std::printf("    execute (exec sent -> exit report: python start)  %8.1f ms\n", median(execute));
  std::printf("    teardown and rest of total                        %8.1f ms\n", teardown);
  std::printf("    total (engine)                                    %8.1f ms\n", median(total));
  std::printf("    CLI process overhead (wall - engine total)        %8.1f ms\n",
              median(cold) - median(total));
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cold_start: %s\n", e.what());
    return 1;
  }
}

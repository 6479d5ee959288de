// One-shot run benchmark (not a test): `airlock run --lang python 'print(1)'`,
// a fresh VM every time, both booted (--no-snapshot) and restored from the
// template snapshot, against a plain QEMU boot of the same kernel with a
// trivial init, interleaved in one process so machine noise hits all three.
// Prints medians, ratios, and where each kind of run spends its time.
//
//   build/bin/bench_cold_start [runs]      (default 7)

#include <unistd.h>

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

// {Pss, Private_Dirty} in kB of the QEMU process whose parent is `parent`.
std::pair<double, double> qemu_memory_of_child(pid_t parent) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    try {
      std::string stat = airlock::read_file(entry.path().string() + "/stat", 4096);
      std::string comm = airlock::read_file(entry.path().string() + "/comm", 256);
      pid_t ppid = std::atoi(stat.substr(stat.rfind(')') + 4).c_str());
      if (ppid != parent || comm.rfind("qemu-system", 0) != 0) continue;
      std::string rollup = airlock::read_file(entry.path().string() + "/smaps_rollup", 65536);
      auto field = [&rollup](const std::string& key) {
        size_t at = rollup.find("\n" + key + ":");
        return at == std::string::npos ? 0.0 : std::atof(rollup.c_str() + at + key.size() + 2);
      };
      return {field("Pss"), field("Private_Dirty")};
    } catch (const airlock::Error&) {
    }
  }
  throw airlock::Error(airlock::ErrorCode::internal, "no QEMU child found to measure");
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

  struct Series {
    std::vector<double> wall, setup, boot, execute, total;
  };
  auto run_airlock = [&](Series& series, bool snapshot) {
    std::vector<std::string> command = {airlock_bin, "run", "--json", "--lang", "python", "print(1)"};
    if (!snapshot) command.push_back("--no-snapshot");
    auto start = SteadyClock::now();
    auto result = airlock::run_command(command, current_environment(), std::chrono::seconds(60));
    series.wall.push_back(ms_since(start));
    const size_t brace = result.output.find('{');
    json parsed = json::parse(brace == std::string::npos ? "" : result.output.substr(brace), nullptr, false);
    if (parsed.is_discarded() || parsed["stdout"] != "1\n" || parsed["from_snapshot"] != snapshot) {
      throw airlock::Error(airlock::ErrorCode::internal, "bad run: " + result.output);
    }
    series.setup.push_back(parsed["timing"]["setup_ms"].get<double>());
    series.boot.push_back(parsed["timing"]["boot_ms"].get<double>());
    series.execute.push_back(parsed["timing"]["execute_ms"].get<double>());
    series.total.push_back(parsed["timing"]["total_ms"].get<double>());
  };

  std::vector<double> baseline;
  Series cold, cloned;
  // Untimed first runs: the accelerator probe verdict, the template snapshot
  // and the page cache are made here, not inside the measurement.
  boot_trivial(kernel, initramfs);
  run_airlock(cloned, true);
  cloned = Series{};
  for (int i = 0; i < runs; ++i) {
    baseline.push_back(boot_trivial(kernel, initramfs));
    run_airlock(cold, false);
    run_airlock(cloned, true);
  }
  auto report = [](const char* title, const Series& series) {
    std::printf("  %s\n", title);
    std::printf("    setup   (validate, images, overlay, spawn)        %8.1f ms\n", median(series.setup));
    std::printf("    boot    (QEMU start -> agent ready)               %8.1f ms\n", median(series.boot));
    std::printf("    execute (program started -> exit report)          %8.1f ms\n", median(series.execute));
    std::printf("    teardown and rest                                 %8.1f ms\n",
                median(series.total) - median(series.setup) - median(series.boot) - median(series.execute));
    std::printf("    total (engine)                                    %8.1f ms\n", median(series.total));
    std::printf("    CLI process overhead (wall - engine total)        %8.1f ms\n",
                median(series.wall) - median(series.total));
  };
  std::printf("airlock run --lang python 'print(1)', %d runs each, interleaved, medians (TCG)\n", runs);
  std::printf("  baseline: plain QEMU boot of the same kernel, trivial init, to exit  %8.1f ms\n",
              median(baseline));
  std::printf(
      "  cold (--no-snapshot): fresh kernel boot, wall                         %8.1f ms  %5.2fx baseline\n",
      median(cold.wall), median(cold.wall) / median(baseline));
  std::printf(
      "  from snapshot (default): clone restore, wall                         %8.1f ms  %5.2fx baseline\n",
      median(cloned.wall), median(cloned.wall) / median(baseline));
  report("cold breakdown:", cold);
  report("from-snapshot breakdown:", cloned);

  // Memory of one VM whose program idles: proportional set size (shared
  // pages split between sharers) and private dirty pages of its QEMU.
  std::printf("  memory of one VM idling in time.sleep (from /proc/<qemu>/smaps_rollup):\n");
  for (bool snapshot : {false, true}) {
    std::vector<std::string> command = {airlock_bin, "run", "--lang", "python", "import time; time.sleep(4)"};
    if (!snapshot) command.push_back("--no-snapshot");
    airlock::SpawnOptions options;
    options.env = current_environment();
    airlock::ChildProcess cli = airlock::ChildProcess::spawn(command, options);
    ::usleep(snapshot ? 2'000'000 : 3'000'000);
    auto [pss_kb, private_kb] = qemu_memory_of_child(cli.pid());
    cli.wait();
    std::printf("    %-28s PSS %6.1f MiB, private dirty %6.1f MiB\n",
                snapshot ? "clone (default)" : "fresh boot (--no-snapshot)", pss_kb / 1024.0,
                private_kb / 1024.0);
  }
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

// Warm-pool benchmark (not a test): airlockd on a private socket, `print(1)`
// requests through the Unix socket, against host baselines in the same run:
// Debian's /usr/bin/python3 -c and the same under bubblewrap.
//
//   build/bin/bench_warm_latency [requests]   (default 200)
//
// Prints p50/p99 of requests that found a ready VM (paced: each waits for
// the pool to refill first), the baselines, their ratio, and sustained
// back-to-back runs/second with a fresh VM per run.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/child_process.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "engine/paths.h"
#include "support.h"

extern char** environ;

namespace fs = std::filesystem;
using airlock::SteadyClock;
using nlohmann::json;

using airlock::bench::http;
using airlock::bench::ms_since;
using airlock::bench::percentile;
using airlock::bench::ready_vms;

namespace {

std::vector<double> time_command(const std::vector<std::string>& argv, int runs) {
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    auto start = SteadyClock::now();
    auto result = airlock::run_command(argv, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(30));
    times.push_back(ms_since(start));
    if (result.output != "1\n")
      throw airlock::Error(airlock::ErrorCode::internal, "baseline failed: " + result.output);
  }
  return times;
}

int run_benchmark(int requests) {
  airlock::TempDir runtime = airlock::TempDir::create(airlock::engine::default_runtime_dir(), "run-bench-");
  const std::string socket_path = runtime.file("airlockd.sock");
  airlock::ChildProcess daemon = airlock::bench::start_daemon(runtime, {"--pool-size", "2"});
  auto wait_ready = [&](int count) {
    for (int i = 0; i < 2000; ++i) {
      try {
        if (ready_vms(socket_path, "python-256m") >= count) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    throw airlock::Error(airlock::ErrorCode::internal, "the python pool did not fill");
  };
  const std::string request = R"J({"language":"python","code":"print(1)"})J";
  wait_ready(2);
  std::vector<double> warm, host, bwrap;
  int hits = 0;
  for (int i = 0; i < requests; ++i) {
    wait_ready(2);  // a full pool: no refill competes with the measured request
    auto start = SteadyClock::now();
    json result = json::parse(http(socket_path, "POST", "/v1/run", request));
    warm.push_back(ms_since(start));
    if (result["stdout"] != "1\n")
      throw airlock::Error(airlock::ErrorCode::internal, "bad run: " + result.dump());
    hits += result["pool_hit"].get<bool>();
    if (i % 20 == 0) {  // baselines interleaved, so drift hits both
      wait_ready(2);    // and, like the requests, never beside a refill
      auto h = time_command({"/usr/bin/python3", "-c", "print(1)"}, 2);
      host.insert(host.end(), h.begin(), h.end());
      auto b = time_command({"bwrap",
                             "--ro-bind",
                             "/usr",
                             "/usr",
                             "--symlink",
                             "usr/lib64",
                             "/lib64",
                             "--symlink",
                             "usr/lib",
                             "/lib",
                             "--symlink",
                             "usr/bin",
                             "/bin",
                             "--proc",
                             "/proc",
                             "--dev",
                             "/dev",
                             "--unshare-all",
                             "--die-with-parent",
                             "/usr/bin/python3",
                             "-c",
                             "print(1)"},
                            2);
      bwrap.insert(bwrap.end(), b.begin(), b.end());
    }
  }
  // Memory of the idle pooled python VMs (all alive at once, so the pages of
  // the template they share are split between them), and clone restore
  // times as the daemon's own metrics saw them.
  wait_ready(2);
  std::vector<double> pss, private_dirty;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    try {
      const std::string cmdline = airlock::read_file(entry.path().string() + "/cmdline", 1 << 16);
      if (cmdline.rfind("qemu-system", 0) != 0 || cmdline.find(runtime.path()) == std::string::npos ||
          cmdline.find("python-256m") == std::string::npos) {
        continue;
      }
      const std::string rollup = airlock::read_file(entry.path().string() + "/smaps_rollup", 65536);
      auto field = [&rollup](const std::string& key) {
        size_t at = rollup.find("\n" + key + ":");
        return at == std::string::npos ? 0.0 : std::atof(rollup.c_str() + at + key.size() + 2) / 1024.0;
      };
      pss.push_back(field("Pss"));
      private_dirty.push_back(field("Private_Dirty"));
    } catch (const airlock::Error&) {
    }
  }
  const std::string metrics = http(socket_path, "GET", "/metrics");
  auto metric = [&metrics](const std::string& name) {
    size_t at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? 0.0 : std::atof(metrics.c_str() + at + name.size() + 2);
  };
  const double restores = metric("airlock_clone_restore_duration_seconds_count");
  const double restore_mean_ms =
      restores > 0 ? 1000.0 * metric("airlock_clone_restore_duration_seconds_sum") / restores : 0.0;

  // Sustained: back to back, each run a fresh VM (pool hit or not).
  const int sustained_runs = 20;
  auto sustained_start = SteadyClock::now();
  for (int i = 0; i < sustained_runs; ++i) http(socket_path, "POST", "/v1/run", request);
  const double runs_per_second = sustained_runs / (ms_since(sustained_start) / 1000.0);

  daemon.kill(SIGTERM);
  daemon.wait_or_kill(std::chrono::seconds(30));

  std::printf("warm print(1) through airlockd's Unix socket, %d requests (pool hits: %d), TCG\n", requests,
              hits);
  std::printf("  airlock warm run        p50 %7.1f ms   p99 %7.1f ms\n", percentile(warm, 0.5),
              percentile(warm, 0.99));
  std::printf("  host /usr/bin/python3   p50 %7.1f ms   (%zu runs)\n", percentile(host, 0.5), host.size());
  std::printf("  bwrap ... python3       p50 %7.1f ms   (%zu runs)\n", percentile(bwrap, 0.5), bwrap.size());
  std::printf("  ratio airlock p50 / bwrap p50       %6.2fx\n",
              percentile(warm, 0.5) / percentile(bwrap, 0.5));
  std::printf("  ratio airlock p50 / host python p50 %6.2fx\n",
              percentile(warm, 0.5) / percentile(host, 0.5));
  std::printf("  sustained, fresh VM per run, back to back: %.1f runs/s (2 cores)\n", runs_per_second);
  std::printf("  clone restore (QEMU start -> guest ready), mean of %.0f pool clones: %.1f ms\n", restores,
              restore_mean_ms);
  for (size_t i = 0; i < pss.size(); ++i) {
    std::printf("  idle pooled python VM %zu of %zu: PSS %.1f MiB, private dirty %.1f MiB\n", i + 1,
                pss.size(), pss[i], private_dirty[i]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc > 1 ? std::max(20, std::atoi(argv[1])) : 200);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_warm_latency: %s\n", e.what());
    return 1;
  }
}

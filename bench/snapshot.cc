// Snapshot benchmark (not a test): airlockd on a private socket and
// snapshot directory, against a baseline in the same run: creating a
// sandbox from the template (a clone, no pool).
//
//   build/bin/bench_snapshot [rounds]   (default 10)
//
// Prints: how long a 256 MiB python sandbox was paused by a snapshot of it
// and how long the snapshot took; restore p50 (until the new sandbox
// answers its create, and its first exec); fork into 8 until all 8 have
// answered an exec; PSS per forked copy's QEMU beside the source's.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "engine/paths.h"
#include "support.h"

using airlock::SteadyClock;
using airlock::bench::call;
using airlock::bench::http;
using airlock::bench::ms_since;
using airlock::bench::percentile;
using nlohmann::json;

namespace {

void exec_true(const std::string& socket, const std::string& id) {
  json result = call(socket, "POST", "/v1/sandboxes/" + id + "/execs", R"({"argv":["true"]})");
  if (result["exit_code"] != 0) throw airlock::Error(airlock::ErrorCode::internal, result.dump());
}

// PSS of every QEMU whose command line names `marker` (a sandbox's run
// directory is on it), in KiB, by pid.
std::map<int, long> qemu_pss(const std::string& marker) {
  std::map<int, long> pss;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const int pid = std::atoi(entry.path().filename().c_str());
    if (pid <= 0) continue;
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (text.rfind("qemu-system", 0) != 0 && text.find("/qemu-system") == std::string::npos) continue;
    if (text.find(marker) == std::string::npos) continue;
    std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
    for (std::string line; std::getline(rollup, line);) {
      if (line.rfind("Pss:", 0) == 0) pss[pid] = std::atol(line.c_str() + 4);
    }
  }
  return pss;
}

int run_benchmark(int rounds) {
  airlock::TempDir runtime = airlock::TempDir::create(airlock::engine::default_runtime_dir(), "run-bench-");
  const std::string socket = runtime.file("airlockd.sock");
  airlock::ChildProcess daemon =
      airlock::bench::start_daemon(runtime, {"--pool-size", "0", "--snapshot-dir", runtime.file("snapshots"),
                                             "--max-sandboxes", "40", "--vm-cpu-budget", "32"});
  airlock::bench::wait_for_daemon(socket);
  const std::string spec = R"({"language":"python","memory_mb":256})";
  // Baseline: a sandbox from the template, as a create without a pool makes it.
  std::vector<double> clone;
  for (int i = 0; i < rounds; ++i) {
    auto start = SteadyClock::now();
    json sandbox = call(socket, "POST", "/v1/sandboxes", spec);
    exec_true(socket, sandbox["id"]);
    clone.push_back(ms_since(start));
    call(socket, "DELETE", "/v1/sandboxes/" + sandbox["id"].get<std::string>());
  }

  // The source: a python sandbox with a process that holds some memory and runs.
  const std::string source = call(socket, "POST", "/v1/sandboxes", spec)["id"];
  call(socket, "POST", "/v1/sandboxes/" + source + "/execs",
       R"x({"argv":["python3","-c","import time\nx = bytearray(32 << 20)\nwhile True: time.sleep(0.05)"],)x"
       R"x("background":true})x");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::vector<double> paused, total, wall;
  std::string kept;
  for (int i = 0; i < rounds; ++i) {
    auto start = SteadyClock::now();
    json snapshot = call(socket, "POST", "/v1/sandboxes/" + source + "/snapshots", "{}");
    wall.push_back(ms_since(start));
    paused.push_back(snapshot["paused_ms"].get<double>());
    total.push_back(snapshot["total_ms"].get<double>());
    if (kept.empty()) {
      kept = snapshot["id"];
    } else {
      call(socket, "DELETE", "/v1/snapshots/" + snapshot["id"].get<std::string>());
    }
  }
  std::vector<double> restore, restore_exec;
  for (int i = 0; i < rounds; ++i) {
    auto start = SteadyClock::now();
    json copy = call(socket, "POST", "/v1/snapshots/" + kept + "/restore", "{}");
    restore.push_back(ms_since(start));
    exec_true(socket, copy["id"]);
    restore_exec.push_back(ms_since(start));
    call(socket, "DELETE", "/v1/sandboxes/" + copy["id"].get<std::string>());
  }
  const auto source_pss = qemu_pss(runtime.path());
  auto start = SteadyClock::now();
  json forked = call(socket, "POST", "/v1/sandboxes/" + source + "/fork", R"({"count":8})");
  const double fork_answer_ms = ms_since(start);
  std::vector<std::thread> askers;
  std::vector<std::string> copies;
  for (const auto& copy : forked["copies"]) {
    if (!copy.contains("sandbox")) throw airlock::Error(airlock::ErrorCode::internal, copy.dump());
    copies.push_back(copy["sandbox"]["id"]);
  }
  for (const auto& id : copies) askers.emplace_back([&, id] { exec_true(socket, id); });
  for (auto& asker : askers) asker.join();
  const double fork_ready_ms = ms_since(start);
  const auto all_pss = qemu_pss(runtime.path());
  long copies_pss = 0;
  int counted = 0;
  for (const auto& [pid, kib] : all_pss) {
    if (source_pss.count(pid)) continue;
    copies_pss += kib;
    ++counted;
  }
  long source_kib = 0;
  for (const auto& [pid, kib] : source_pss) source_kib += kib;
  for (const auto& id : copies) call(socket, "DELETE", "/v1/sandboxes/" + id);

  std::printf("snapshots of a 256 MiB python sandbox, %d rounds (TCG unless KVM works here)\n", rounds);
  std::printf("  baseline: create from the template + exec   p50 %7.1f ms\n", percentile(clone, 0.5));
  std::printf("  snapshot: source paused                     p50 %7.1f ms   max %7.1f ms\n",
              percentile(paused, 0.5), percentile(paused, 1.0));
  std::printf("  snapshot: total (QEMU) / answered            p50 %7.1f ms / %7.1f ms\n",
              percentile(total, 0.5), percentile(wall, 0.5));
  std::printf("  restore: until created / first exec answered p50 %7.1f ms / %7.1f ms   %.2fx the baseline\n",
              percentile(restore, 0.5), percentile(restore_exec, 0.5),
              percentile(restore_exec, 0.5) / percentile(clone, 0.5));
  std::printf("  fork into 8: answered %.0f ms, all 8 answered an exec %.0f ms\n", fork_answer_ms,
              fork_ready_ms);
  std::printf("  PSS: source QEMU %ld KiB; per forked copy %ld KiB (%d copies)\n", source_kib,
              counted ? copies_pss / counted : 0, counted);
  daemon.kill(SIGTERM);
  daemon.wait_or_kill(std::chrono::seconds(60));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc > 1 ? std::atoi(argv[1]) : 10);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_snapshot: %s\n", e.what());
    return 1;
  }
}

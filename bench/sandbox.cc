// Sandbox benchmark (not a test): airlockd on a private socket, against a
// baseline in the same run: a one-shot `true` through /v1/run from the pool.
//
//   build/bin/bench_sandbox [rounds]   (default 30)
//
// Prints p50/p99 of: creating a sandbox from a ready pooled VM; `exec true`
// in a live sandbox; the one-shot baseline; a 256 MiB upload and download;
// and airlockd's RSS before and after 1,000 execs in one sandbox.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/child_process.h"
#include "common/error.h"
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

int run_benchmark(int rounds) {
  airlock::TempDir runtime = airlock::TempDir::create(airlock::engine::default_runtime_dir(), "run-bench-");
  const std::string socket = runtime.file("airlockd.sock");
  airlock::ChildProcess daemon = airlock::bench::start_daemon(runtime, {"--pool-size", "0"});
  airlock::bench::wait_for_daemon(socket);
  call(socket, "PUT", "/v1/pools/shell-256m", R"({"target":1})");
  auto wait_ready = [&] {
    for (int i = 0; i < 4000 && airlock::bench::ready_vms(socket, "shell-256m") < 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  std::vector<double> create, exec, one_shot;
  int hits = 0;
  for (int i = 0; i < rounds; ++i) {
    wait_ready();
    auto start = SteadyClock::now();
    json sandbox = call(socket, "POST", "/v1/sandboxes", R"({"language":"shell"})");
    create.push_back(ms_since(start));
    hits += sandbox["pool_hit"].get<bool>();
    const std::string path = "/v1/sandboxes/" + sandbox["id"].get<std::string>();
    for (int j = 0; j < 5; ++j) {
      start = SteadyClock::now();
      json result = call(socket, "POST", path + "/execs", R"({"argv":["true"]})");
      exec.push_back(ms_since(start));
      if (result["exit_code"] != 0) throw airlock::Error(airlock::ErrorCode::internal, result.dump());
    }
    call(socket, "DELETE", path);
    wait_ready();
    start = SteadyClock::now();
    json run = call(socket, "POST", "/v1/run", R"({"language":"shell","code":"true"})");
    one_shot.push_back(ms_since(start));
  }
  // Memory across many execs in one sandbox: flat if nothing accumulates per exec.
  json sandbox = call(socket, "POST", "/v1/sandboxes", R"({"language":"shell","disk_mb":512})");
  const std::string path = "/v1/sandboxes/" + sandbox["id"].get<std::string>();
  // Files: 256 MiB up and the same back, both streamed.
  std::string upload(256 << 20, '\0');
  for (size_t i = 0; i < upload.size(); ++i) upload[i] = static_cast<char>((i * 7919) >> 3);
  auto start = SteadyClock::now();
  http(socket, "PUT", path + "/files?path=/home/sandbox/big.bin", upload);
  const double upload_ms = ms_since(start);
  start = SteadyClock::now();
  const size_t downloaded = http(socket, "GET", path + "/files?path=/home/sandbox/big.bin").size();
  const double download_ms = ms_since(start);
  // Through tmpfs (the guest's memory: no emulated disk), beside the guest's
  // own copies of as much (dd), the floor any transfer there stands on.
  json roomy = call(socket, "POST", "/v1/sandboxes", R"({"language":"shell","memory_mb":1024})");
  const std::string roomy_path = "/v1/sandboxes/" + roomy["id"].get<std::string>();
  upload.resize(128 << 20);
  start = SteadyClock::now();
  http(socket, "PUT", roomy_path + "/files?path=/dev/shm/big.bin", upload);
  const double tmpfs_upload_ms = ms_since(start);
  start = SteadyClock::now();
  http(socket, "GET", roomy_path + "/files?path=/dev/shm/big.bin");
  const double tmpfs_download_ms = ms_since(start);
  const json dd = call(socket, "POST", roomy_path + "/execs",
                       R"({"argv":["sh","-c","dd if=/dev/zero of=/dev/shm/z bs=1M count=128 2>&1; )"
                       R"(dd if=/dev/shm/big.bin of=/dev/null bs=1M 2>&1"]})");
  // dd's "..., 0.81 s, 165 MB/s" lines: the seconds of each.
  std::vector<double> dd_s;
  const std::string dd_out = dd.value("stdout", "");
  for (size_t at = dd_out.find("copied, "); at != std::string::npos; at = dd_out.find("copied, ", at + 1)) {
    dd_s.push_back(std::atof(dd_out.c_str() + at + 8));
  }
  call(socket, "DELETE", roomy_path);
  upload.clear();
  upload.shrink_to_fit();
  for (int j = 0; j < 50; ++j) call(socket, "POST", path + "/execs", R"({"argv":["true"]})");
  const long rss_before = airlock::bench::rss_kib(daemon.pid());
  const int many = std::max(1000, 10 * rounds);
  for (int j = 0; j < many; ++j) call(socket, "POST", path + "/execs", R"({"argv":["true"]})");
  const long rss_after = airlock::bench::rss_kib(daemon.pid());
  call(socket, "DELETE", path);

  std::printf("sandboxes, %d rounds (TCG unless KVM works here)\n", rounds);
  std::printf("  create from a pool        p50 %7.1f ms   p99 %7.1f ms   (%d of %d from the pool)\n",
              percentile(create, 0.5), percentile(create, 0.99), hits, rounds);
  std::printf("  exec true in a sandbox    p50 %7.1f ms   p99 %7.1f ms\n", percentile(exec, 0.5),
              percentile(exec, 0.99));
  std::printf("  baseline: /v1/run true    p50 %7.1f ms   (one-shot from the pool)\n",
              percentile(one_shot, 0.5));
  std::printf("  ratio exec / one-shot     %.2fx\n", percentile(exec, 0.5) / percentile(one_shot, 0.5));
  std::printf("  upload 256 MiB           %7.0f ms   %.0f MB/s\n", upload_ms,
              256 * 1.048576 / (upload_ms / 1000));
  std::printf("  download %zu MiB         %7.0f ms   %.0f MB/s\n", downloaded >> 20, download_ms,
              static_cast<double>(downloaded) / 1e6 / (download_ms / 1000));
  if (dd_s.size() == 2) {
    const double write_mbs = 128 * 1.048576 / dd_s[0], read_mbs = 128 * 1.048576 / dd_s[1];
    const double up_mbs = 128 * 1.048576 / (tmpfs_upload_ms / 1000),
                 down_mbs = 128 * 1.048576 / (tmpfs_download_ms / 1000);
    std::printf("  baseline: guest dd to tmpfs %.0f MB/s, tmpfs to /dev/null %.0f MB/s\n", write_mbs,
                read_mbs);
    std::printf("  upload 128 MiB to tmpfs  %7.0f ms   %.0f MB/s   %.2fx the guest's own write\n",
                tmpfs_upload_ms, up_mbs, up_mbs / write_mbs);
    std::printf("  download it              %7.0f ms   %.0f MB/s   %.2fx the guest's own read\n",
                tmpfs_download_ms, down_mbs, down_mbs / read_mbs);
  } else {
    std::printf("  (the guest's dd did not report: %s)\n", dd_out.c_str());
  }
  std::printf("  airlockd RSS             %ld KiB after 50 execs, %ld KiB after %d more\n", rss_before,
              rss_after, many);
  daemon.kill(SIGTERM);
  daemon.wait_or_kill(std::chrono::seconds(60));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc > 1 ? std::atoi(argv[1]) : 30);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_sandbox: %s\n", e.what());
    return 1;
  }
}

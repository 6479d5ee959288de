// Code-context benchmark (not a test): airlockd on a private socket, a
// python and a javascript sandbox, and in each, against baselines in the
// same run: the cell `1+1` in a code context (POST .../contexts/c/run),
// beside what a caller without contexts does (an exec of `python3 -c` or
// `node -e`), and the floor of any exec (`true`).
//
//   build/bin/bench_code_context [rounds]   (default 200)

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/temp_dir.h"
#include "engine/paths.h"
#include "support.h"

using airlock::SteadyClock;
using airlock::bench::call;
using airlock::bench::ms_since;
using airlock::bench::percentile;
using nlohmann::json;

namespace {

struct Figures {
  double p50 = 0;
  double p99 = 0;
};

template <typename Step>
Figures measure(int rounds, Step step) {
  std::vector<double> took;
  for (int i = 0; i < rounds; ++i) {
    auto start = SteadyClock::now();
    step();
    took.push_back(ms_since(start));
  }
  return {percentile(took, 0.5), percentile(took, 0.99)};
}

void expect(bool ok, const json& answer) {
  if (!ok) throw airlock::Error(airlock::ErrorCode::internal, "unexpected answer: " + answer.dump());
}

void bench_language(const std::string& socket, const std::string& language, int rounds) {
  const std::string id = call(socket, "POST", "/v1/sandboxes", json{{"language", language}}.dump())["id"];
  const std::string base = "/v1/sandboxes/" + id;
  call(socket, "POST", base + "/contexts", R"({"name":"c"})");
  const json interpreter = language == "python" ? json{{"argv", {"python3", "-c", "print(1+1)"}}}
                                                : json{{"argv", {"node", "-e", "console.log(1+1)"}}};
  // Warm each path once: the first of anything pays the emulator's translation.
  for (int i = 0; i < 3; ++i) {
    call(socket, "POST", base + "/contexts/c/run", R"({"code":"1+1"})");
    call(socket, "POST", base + "/execs", R"({"argv":["true"]})");
  }
  const Figures cell = measure(rounds, [&] {
    const json answer = call(socket, "POST", base + "/contexts/c/run", R"({"code":"1+1"})");
    expect(answer["text"] == "2", answer);
  });
  const Figures exec_true = measure(rounds / 4 + 1, [&] {
    const json answer = call(socket, "POST", base + "/execs", R"({"argv":["true"]})");
    expect(answer["exit_code"] == 0, answer);
  });
  const Figures fresh = measure(rounds / 10 + 1, [&] {
    const json answer = call(socket, "POST", base + "/execs", interpreter.dump());
    expect(answer["stdout"] == "2\n", answer);
  });
  std::printf("%s, %d cells (TCG unless KVM works here)\n", language.c_str(), rounds);
  std::printf("  cell 1+1 in a code context       p50 %7.2f ms   p99 %7.2f ms\n", cell.p50, cell.p99);
  std::printf("  baseline: exec true              p50 %7.2f ms   (cell %.2fx)\n", exec_true.p50,
              cell.p50 / exec_true.p50);
  std::printf("  baseline: exec %-17s p50 %7.2f ms   (cell %.2fx)\n",
              language == "python" ? "python3 -c" : "node -e", fresh.p50, cell.p50 / fresh.p50);
  call(socket, "DELETE", base);
}

int run_benchmark(int rounds) {
  airlock::TempDir runtime = airlock::TempDir::create(airlock::engine::default_runtime_dir(), "run-bench-");
  const std::string socket = runtime.file("airlockd.sock");
  airlock::ChildProcess daemon = airlock::bench::start_daemon(runtime, {"--pool-size", "0"});
  airlock::bench::wait_for_daemon(socket);
  bench_language(socket, "python", rounds);
  bench_language(socket, "javascript", rounds);
  daemon.kill(SIGTERM);
  daemon.wait_or_kill(std::chrono::seconds(60));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc > 1 ? std::max(1, std::atoi(argv[1])) : 200);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_code_context: %s\n", e.what());
    return 1;
  }
}

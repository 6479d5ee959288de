// Image benchmark (not a test): what an image's template buys a run.
// airlockd on a private socket with one pool each for python (its own
// image) and python-data; every request waits for a full pool, so each is
// a pool hit with no refill beside it.
//
//   build/bin/bench_images [requests]   (default 20)
//
// Prints p50/p99 of, in the same run:
//   python print(1)                  the python image's floor (the baseline)
//   python-data print(1)             the same code in the bigger image
//   python-data import pandas        pandas already imported by the template
//   python-data import sklearn.linear_model + a fit
//   the same two with fresh_interpreter (a python3 started for the run:
//   what the imports cost without the template's preload)
//   go `fmt.Println(42)` from the go image's pool (built, linked, run)
//   shell `git --version; jq --version; curl --version` in the shell image
// and each one's ratio to the baseline.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/child_process.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/temp_dir.h"
#include "engine/paths.h"
#include "support.h"

using airlock::SteadyClock;
using nlohmann::json;

namespace {

struct Case {
  const char* label;
  json body;
  const char* expected;
  bool fresh_cost = false;  // slow: a quarter of the samples
  std::vector<double> times = {};
};

int run_benchmark(int requests) {
  airlock::TempDir runtime = airlock::TempDir::create(airlock::engine::default_runtime_dir(), "run-bench-");
  const std::string socket_path = runtime.file("airlockd.sock");
  airlock::ChildProcess daemon = airlock::bench::start_daemon(runtime, {"--pool-size", "0"});
  airlock::bench::wait_for_daemon(socket_path);
  // The daemon's own pools (python, shell) get a target; python-data's is made.
  const std::vector<std::string> pools = {"python-256m", "shell-256m", "python-img-python-data-256m",
                                          "go-256m"};
  for (const char* name : {"python-256m", "shell-256m"}) {
    airlock::bench::call(socket_path, "PUT", std::string("/v1/pools/") + name, R"({"target":1})");
  }
  airlock::bench::call(socket_path, "POST", "/v1/pools", R"({"image":"python-data","target":1})");
  airlock::bench::call(socket_path, "POST", "/v1/pools", R"({"language":"go","target":1})");
  auto all_ready = [&] {
    for (const auto& name : pools) {
      int waited = 0;
      while (airlock::bench::ready_vms(socket_path, name) < 1) {
        if (++waited > 60000) throw airlock::Error(airlock::ErrorCode::internal, name + " did not fill");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  };
  const std::string fit =
      "from sklearn.linear_model import LinearRegression\nimport numpy as np\n"
      "m = LinearRegression().fit(np.array([[1], [2], [3]]), np.array([2, 4, 6]))\n"
      "print(round(float(m.coef_[0]), 3))";
  std::vector<Case> cases = {
      {"python print(1)", {{"language", "python"}, {"code", "print(1)"}}, "1\n"},
      {"python-data print(1)", {{"image", "python-data"}, {"code", "print(1)"}}, "1\n"},
      {"python-data import pandas",
       {{"image", "python-data"}, {"code", "import pandas as pd\nprint(pd.__name__)"}},
       "pandas\n"},
      {"python-data sklearn fit", {{"image", "python-data"}, {"code", fit}, {"timeout_s", 120}}, "2.0\n"},
      {"  same, fresh python3",
       {{"image", "python-data"},
        {"code", "import pandas as pd\nprint(pd.__name__)"},
        {"fresh_interpreter", true}},
       "pandas\n",
       true},
      {"  same, fresh python3 (fit)",
       {{"image", "python-data"}, {"code", fit}, {"timeout_s", 120}, {"fresh_interpreter", true}},
       "2.0\n",
       true},
      {"go fmt.Println(42)",
       {{"language", "go"},
        {"code", "package main; import \"fmt\"; func main() { fmt.Println(42) }"},
        {"timeout_s", 120}},
       "42\n",
       true},
      {"shell git+jq+curl",
       {{"language", "shell"},
        {"code", "git --version >/dev/null; jq --version >/dev/null; curl --version >/dev/null; echo ok"}},
       "ok\n"},
  };
  for (int i = 0; i < requests; ++i) {
    for (auto& test_case : cases) {
      if (test_case.fresh_cost && i % 4 != 0) continue;
      all_ready();
      const std::string body = test_case.body.dump();
      const auto start = SteadyClock::now();
      const json result = json::parse(airlock::bench::http(socket_path, "POST", "/v1/run", body));
      test_case.times.push_back(airlock::bench::ms_since(start));
      if (result.value("stdout", "") != test_case.expected || !result.value("pool_hit", false)) {
        throw airlock::Error(airlock::ErrorCode::internal,
                             std::string(test_case.label) + ": " + result.dump());
      }
    }
  }
  daemon.kill(SIGTERM);
  daemon.wait_or_kill(std::chrono::seconds(60));

  const double baseline = airlock::bench::percentile(cases[0].times, 0.5);
  std::printf("warm pool hits through airlockd, each waiting for full pools, TCG (%d requests)\n", requests);
  std::printf("  %-34s %9s %9s %9s %s\n", "case", "p50 ms", "p99 ms", "x base", "samples");
  for (const auto& test_case : cases) {
    const double p50 = airlock::bench::percentile(test_case.times, 0.5);
    std::printf("  %-34s %9.1f %9.1f %9.2f %zu\n", test_case.label, p50,
                airlock::bench::percentile(test_case.times, 0.99), p50 / baseline, test_case.times.size());
  }
  std::printf(
      "  (x base: p50 over python print(1) in this run; the fresh rows are what the template's preload "
      "saves)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc > 1 ? std::stoi(argv[1]) : 20);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_images: %s\n", e.what());
    return 1;
  }
}

// Fresh-interpreter benchmark (not a test): what `--fresh-interpreter` (a
// Python started for the run, with a hash() secret of its own) costs
// against the default, the template's prestarted interpreter, in the same
// run: `airlock run --no-daemon --json --lang python` of one program, the
// two kinds interleaved so that drift hits both.
//
//   build/bin/bench_fresh_interpreter [runs]   (default 9 of each)
//
// Prints the medians of wall time and execute_ms (the guest's part: from
// exec to the exit report) and their ratios, for `print(1)` and for a
// program that imports a few modules the prestarted interpreter has loaded.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/child_process.h"
#include "common/clock.h"
#include "common/error.h"

extern char** environ;

namespace fs = std::filesystem;
using airlock::SteadyClock;
using nlohmann::json;

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

struct Series {
  std::vector<double> wall, execute;
};

int run_benchmark(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(3, std::atoi(argv[1])) : 9;
  const std::string airlock_bin = (fs::read_symlink("/proc/self/exe").parent_path() / "airlock").string();
  std::vector<std::string> env;
  for (char** entry = environ; *entry; ++entry) env.emplace_back(*entry);

  const std::pair<const char*, const char*> programs[] = {
      {"print(1)", "print(1)"},
      {"imports", "import json, re, datetime, collections; print(1)"},
  };
  auto run_once = [&](Series& series, const std::string& code, bool fresh) {
    std::vector<std::string> command = {airlock_bin, "run",    "--no-daemon", "--json",
                                        "--lang",    "python", code};
    if (fresh) command.push_back("--fresh-interpreter");
    auto start = SteadyClock::now();
    auto result = airlock::run_command(command, env, std::chrono::seconds(60));
    series.wall.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count());
    const size_t brace = result.output.find('{');
    json parsed = json::parse(brace == std::string::npos ? "" : result.output.substr(brace), nullptr, false);
    if (parsed.is_discarded() || parsed["stdout"] != "1\n" || parsed["from_snapshot"] != true) {
      throw airlock::Error(airlock::ErrorCode::internal, "bad run: " + result.output);
    }
    series.execute.push_back(parsed["timing"]["execute_ms"].get<double>());
  };

  std::printf("%d runs of each kind, interleaved (airlock run --no-daemon, template clone)\n", runs);
  std::printf("%-10s %-22s %10s %12s\n", "program", "interpreter", "wall ms", "execute ms");
  for (const auto& [name, code] : programs) {
    Series untimed, prestarted, fresh;
    run_once(untimed, code, false);  // the template snapshot is made here, not measured
    run_once(untimed, code, true);
    for (int i = 0; i < runs; ++i) {
      run_once(prestarted, code, false);
      run_once(fresh, code, true);
    }
    std::printf("%-10s %-22s %10.0f %12.0f\n", name, "prestarted (default)", median(prestarted.wall),
                median(prestarted.execute));
    std::printf("%-10s %-22s %10.0f %12.0f\n", name, "--fresh-interpreter", median(fresh.wall),
                median(fresh.execute));
    std::printf("%-10s %-22s %10.2fx %11.2fx\n", name, "ratio fresh/prestarted",
                median(fresh.wall) / median(prestarted.wall),
                median(fresh.execute) / median(prestarted.execute));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_benchmark(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fresh_interpreter: %s\n", e.what());
    return 1;
  }
}

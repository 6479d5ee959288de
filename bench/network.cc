// Network policy benchmark (not a test). Two questions, each answered with a
// baseline measured in the same process, interleaved, because this machine
// is noisy:
//  1. What does one HTTP request through the allow: path cost (guest TCP ->
//     virtio-net -> libslirp -> egress filter -> local server), against the
//     same request to a server on the guest's own loopback (same interpreter,
//     same emulated CPU, no network path)?
//  2. What does a policy cost a one-shot run (a clone with a NIC and a
//     network stack) against the same run with --net none?
//
//   build/bin/bench_network [runs]      (default 7)

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/engine.h"
#include "support/upstream_server.h"

using airlock::SteadyClock;

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// Times `requests` GETs to the guest's loopback and `requests` through the
// filter, interleaved, and prints the per-request milliseconds of each.
constexpr const char* kRequestTimer = R"PY(
import http.server, threading, time, urllib.request
class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"host=local path=/\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 8000), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
def timed(url):
    start = time.perf_counter()
    urllib.request.urlopen(url, timeout=10).read()
    return (time.perf_counter() - start) * 1000
timed("http://127.0.0.1:8000/"); timed("http://api.test/")  # first use: imports, connections
local, filtered = [], []
for _ in range(20):
    local.append(timed("http://127.0.0.1:8000/"))
    filtered.append(timed("http://api.test/"))
local.sort(); filtered.sort()
print(local[10], filtered[10])
)PY";

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 7;
  airlock::testing::UpstreamServer upstream;
  airlock::engine::EngineOptions options;
  auto entry =
      airlock::network::parse_resolver_entry("api.test=127.0.0.1:" + std::to_string(upstream.port()));
  options.test_resolver[entry.name] = entry;
  airlock::engine::Engine engine(options);

  airlock::engine::RunRequest request;
  request.language = "python";
  request.network = "allow:api.test";
  request.code = kRequestTimer;
  // Templates for both profiles are built before anything is timed.
  for (const char* network : {"none", "allow:api.test"}) {
    airlock::engine::RunRequest warm;
    warm.language = "python";
    warm.network = network;
    warm.code = "print(1)";
    engine.run(warm);
  }

  std::vector<double> local, filtered, plain_run, policy_run;
  for (int i = 0; i < runs; ++i) {
    auto result = engine.run(request);
    std::istringstream numbers(result.stdout_data);
    double local_ms = 0, filtered_ms = 0;
    if (result.status != airlock::engine::RunStatus::ok || !(numbers >> local_ms >> filtered_ms)) {
      std::fprintf(stderr, "request timer failed: %s %s\n", result.error.c_str(), result.stderr_data.c_str());
      return 1;
    }
    local.push_back(local_ms);
    filtered.push_back(filtered_ms);
    for (const char* network : {"none", "allow:api.test"}) {
      airlock::engine::RunRequest one_shot;
      one_shot.language = "python";
      one_shot.network = network;
      one_shot.code = "print(1)";
      auto run = engine.run(one_shot);
      (std::string(network) == "none" ? plain_run : policy_run).push_back(run.timing.total_ms);
    }
  }
  std::printf("HTTP GET, guest loopback (baseline)   p50 %7.2f ms\n", median(local));
  std::printf("HTTP GET, allow: filter to the host   p50 %7.2f ms   ratio %.2fx\n", median(filtered),
              median(filtered) / median(local));
  std::printf("one-shot print(1), --net none         p50 %7.0f ms\n", median(plain_run));
  std::printf("one-shot print(1), --net allow:       p50 %7.0f ms   ratio %.2fx\n", median(policy_run),
              median(policy_run) / median(plain_run));
  return 0;
}

#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace airlock::server {

// Prometheus metrics of the daemon, in base units with the airlock_ prefix.
// Labels are bounded sets (language, status, pool): never a sandbox id.
class Metrics {
 public:
  void record_run(const std::string& language, const std::string& status, double seconds);
  void record_restore(double seconds);
  void record_vm_crash();
  void record_queue_rejection();
  void record_network_denials(size_t count);
  // `pool_lines` are the pool gauges, rendered by whoever owns the pools.
  std::string render(const std::string& pool_lines) const;

 private:
  struct Histogram {
    static constexpr std::array<double, 12> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                        0.5,   1,    2.5,   5,    10,  30};
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
    void observe(double value);
    void render(std::string& out, const std::string& name) const;
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, uint64_t> runs_;
  Histogram run_duration_;
  Histogram restore_duration_;
  uint64_t vm_crashes_ = 0;
  uint64_t network_denials_ = 0;
  uint64_t queue_rejections_ = 0;
};

}  // namespace airlock::server

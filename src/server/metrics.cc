#include "server/metrics.h"

#include <cstdio>

namespace airlock::server {

namespace {

std::string number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}

}  // namespace

void Metrics::Histogram::observe(double value) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (value <= kBuckets[i]) ++counts[i];
  }
  ++count;
  sum += value;
}

void Metrics::Histogram::render(std::string& out, const std::string& name) const {
  out += "# TYPE " + name + " histogram\n";
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    out += name + "_bucket{le=\"" + number(kBuckets[i]) + "\"} " + std::to_string(counts[i]) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
  out += name + "_sum " + number(sum) + "\n";
  out += name + "_count " + std::to_string(count) + "\n";
}

void Metrics::record_run(const std::string& language, const std::string& status, double seconds) {
  std::lock_guard lock(mutex_);
  ++runs_[{language, status}];
  run_duration_.observe(seconds);
}

void Metrics::record_restore(double seconds) {
  std::lock_guard lock(mutex_);
  restore_duration_.observe(seconds);
}

void Metrics::record_vm_crash() {
  std::lock_guard lock(mutex_);
  ++vm_crashes_;
}

void Metrics::record_network_denials(size_t count) {
  std::lock_guard lock(mutex_);
  network_denials_ += count;
}

void Metrics::record_queue_rejection() {
  std::lock_guard lock(mutex_);
  ++queue_rejections_;
}

std::string Metrics::render(const std::string& pool_lines) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out += "# HELP airlock_runs_total Runs finished, by language and status.\n";
  out += "# TYPE airlock_runs_total counter\n";
  for (const auto& [key, count] : runs_) {
    out += "airlock_runs_total{language=\"" + key.first + "\",status=\"" + key.second + "\"} " +
           std::to_string(count) + "\n";
  }
  out += "# HELP airlock_run_duration_seconds Time from request to result.\n";
  run_duration_.render(out, "airlock_run_duration_seconds");
  out += "# HELP airlock_clone_restore_duration_seconds QEMU start to guest ready, for clones.\n";
  restore_duration_.render(out, "airlock_clone_restore_duration_seconds");
  out += "# HELP airlock_vm_crashes_total Runs whose VM stopped unexpectedly.\n";
  out += "# TYPE airlock_vm_crashes_total counter\n";
  out += "airlock_vm_crashes_total " + std::to_string(vm_crashes_) + "\n";
  out += "# HELP airlock_queue_rejections_total Requests refused with 429 by admission control.\n";
  out += "# TYPE airlock_queue_rejections_total counter\n";
  out += "airlock_queue_rejections_total " + std::to_string(queue_rejections_) + "\n";
  out += "# HELP airlock_network_denied_total Guest connections the network filter refused.\n";
  out += "# TYPE airlock_network_denied_total counter\n";
  out += "airlock_network_denied_total " + std::to_string(network_denials_) + "\n";
  out += pool_lines;
  return out;
}

}  // namespace airlock::server

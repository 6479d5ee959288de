#pragma once

// What the benchmarks that speak to a real airlockd share.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/child_process.h"
#include "common/clock.h"
#include "common/temp_dir.h"

namespace airlock::bench {

double ms_since(SteadyClock::time_point start);
double percentile(std::vector<double> values, double p);
// One HTTP exchange on a fresh Unix-socket connection; returns the body.
std::string http(const std::string& socket_path, const std::string& method, const std::string& path,
                 const std::string& body = "");
// The same for a JSON answer; Error(internal) naming the request for an error answer.
nlohmann::json call(const std::string& socket_path, const std::string& method, const std::string& path,
                    const std::string& body = "");
// Waits (up to 10 s) until airlockd answers on `socket_path`.
void wait_for_daemon(const std::string& socket_path);
// Ready VMs of the named pool.
int ready_vms(const std::string& socket_path, const std::string& pool);
// airlockd from beside this benchmark, on <runtime>/airlockd.sock with that
// runtime directory, given `arguments`.
ChildProcess start_daemon(const TempDir& runtime, const std::vector<std::string>& arguments);
// VmRSS of a process, in KiB.
long rss_kib(int pid);

}  // namespace airlock::bench

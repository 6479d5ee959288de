#include "support.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"

extern char** environ;

namespace airlock::bench {

using nlohmann::json;

double ms_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

json call(const std::string& socket_path, const std::string& method, const std::string& path,
          const std::string& body) {
  json reply = json::parse(http(socket_path, method, path, body), nullptr, false);
  if (reply.is_discarded() || (reply.contains("error") && reply["error"].is_object())) {
    throw Error(ErrorCode::internal, method + " " + path + ": " + reply.dump());
  }
  return reply;
}

void wait_for_daemon(const std::string& socket_path) {
  for (int i = 0; i < 400; ++i) {
    try {
      http(socket_path, "GET", "/v1/health");
      return;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

// One HTTP exchange on a fresh Unix-socket connection; returns the body.
std::string http(const std::string& socket_path, const std::string& method, const std::string& path,
                 const std::string& body) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) throw_errno("connect");
  write_all(fd.get(), method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string response;
  char buffer[65536];
  while (auto n = read_some(fd.get(), buffer, sizeof buffer)) {
    if (*n == 0) break;
    response.append(buffer, *n);
  }
  size_t start = response.find("\r\n\r\n");
  return start == std::string::npos ? "" : response.substr(start + 4);
}

int ready_vms(const std::string& socket_path, const std::string& pool) {
  json listing = json::parse(http(socket_path, "GET", "/v1/pools"));
  for (const auto& entry : listing["pools"]) {
    if (entry["name"] == pool) return entry["ready"].get<int>();
  }
  return 0;
}

ChildProcess start_daemon(const TempDir& runtime, const std::vector<std::string>& arguments) {
  const std::filesystem::path bin_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  SpawnOptions options;
  for (char** entry = environ; *entry; ++entry) options.env.emplace_back(*entry);
  options.env.push_back("AIRLOCK_RUNTIME_DIR=" + runtime.path());
  std::vector<std::string> argv = {(bin_dir / "airlockd").string(), "--socket",
                                   runtime.file("airlockd.sock")};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return ChildProcess::spawn(argv, options);
}

long rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace airlock::bench

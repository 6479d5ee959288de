#include "support/test_daemon.h"

#include <signal.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/io.h"
#include "engine/request_json.h"

extern char** environ;

namespace airlock::testing {

namespace fs = std::filesystem;

TestDaemon::TestDaemon(fs::path dir) : dir_(std::move(dir)), socket_((dir_ / "airlockd.sock").string()) {}

std::vector<std::string> TestDaemon::environment() const {
  std::vector<std::string> env;
  for (char** entry = environ; *entry; ++entry) env.emplace_back(*entry);
  env.push_back("AIRLOCK_RUNTIME_DIR=" + dir_.string());
  return env;
}

bool TestDaemon::start(const std::vector<std::string>& extra, const std::vector<std::string>& extra_env) {
  std::vector<std::string> argv = {fs::path(AIRLOCK_BIN).parent_path() / "airlockd", "--socket", socket_};
  argv.insert(argv.end(), extra.begin(), extra.end());
  SpawnOptions options;
  options.env = environment();
  options.env.insert(options.env.end(), extra_env.begin(), extra_env.end());
  process_ = ChildProcess::spawn(argv, options);
  for (int i = 0; i < 600; ++i) {
    if (get("/v1/health").status == 200) return true;
    if (!process_.running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::optional<ExitStatus> TestDaemon::stop() {
  if (!process_.running()) return std::nullopt;
  process_.kill(SIGTERM);
  return process_.wait_or_kill(std::chrono::seconds(30));
}

namespace {
std::atomic<int> file_counter{0};
}

HttpReply TestDaemon::post(const std::string& path, const std::string& body, const std::string& accept) {
  const fs::path body_file = dir_ / ("request-" + std::to_string(file_counter++) + ".body");
  write_file(body_file, body);
  HttpReply reply = request({"-H", "Accept: " + accept, "-H", "Content-Type: application/json",
                             "--data-binary", "@" + body_file.string(), "http://airlockd" + path});
  std::error_code ec;
  fs::remove(body_file, ec);
  return reply;
}

HttpReply TestDaemon::request(const std::vector<std::string>& curl_args) {
  // The body goes to a file: run_command keeps only the first 64 KiB of output.
  const fs::path body_file = dir_ / ("reply-" + std::to_string(file_counter++) + ".body");
  std::vector<std::string> argv = {"curl", "-s",      "-S", "--unix-socket", socket_,
                                   "-o",   body_file, "-w", "%{http_code}"};
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  auto result = run_command(argv, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(300));
  HttpReply reply;
  reply.status = std::atoi(result.output.c_str());
  std::error_code ec;
  if (fs::exists(body_file, ec)) reply.body = read_file(body_file, 256 << 20);
  fs::remove(body_file, ec);
  return reply;
}

bool TestDaemon::wait_for_ready(const std::string& pool) {
  for (int i = 0; i < 1200; ++i) {
    const auto listing = nlohmann::json::parse(get("/v1/pools").body, nullptr, false);
    if (listing.is_object()) {
      for (const auto& entry : listing["pools"]) {
        if (entry["name"] == pool && entry["ready"].get<int>() > 0) return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

engine::RunRequest run_request(std::string language, std::string code) {
  engine::RunRequest request;
  request.language = std::move(language);
  request.code = std::move(code);
  return request;
}

HttpReply TestDaemon::run(const engine::RunRequest& request) {
  return post("/v1/run", engine::to_json(request).dump());
}

}  // namespace airlock::testing

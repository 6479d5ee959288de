#pragma once

// A real airlockd for tests: started on a private socket with a private
// runtime directory, spoken to over HTTP (curl --unix-socket), and stopped
// with SIGTERM, which must drain it and leave no socket behind.

#include <filesystem>
#include <string>
#include <vector>

#include "common/child_process.h"
#include "engine/run_request.h"

namespace airlock::testing {

struct HttpReply {
  int status = 0;
  std::string body;
};

// A request of `language` running `code`, every other field its default.
engine::RunRequest run_request(std::string language, std::string code);

class TestDaemon {
 public:
  // `dir` holds the socket and is the daemon's AIRLOCK_RUNTIME_DIR.
  explicit TestDaemon(std::filesystem::path dir);

  // Starts airlockd with `extra` arguments and `extra_env` (NAME=value) and
  // waits until /v1/health answers; false if it never does.
  bool start(const std::vector<std::string>& extra = {}, const std::vector<std::string>& extra_env = {});
  // SIGTERM, then waits for a clean exit; returns its status (nullopt if it was not running).
  std::optional<ExitStatus> stop();
  bool running() { return process_.running(); }
  ChildProcess& process() { return process_; }

  HttpReply request(const std::vector<std::string>& curl_args);
  HttpReply get(const std::string& path) { return request({"http://airlockd" + path}); }
  // The body is passed in a file: it may be larger than a command line.
  HttpReply post(const std::string& path, const std::string& body,
                 const std::string& accept = "application/json");
  // POST /v1/run of `request` in the one JSON form the CLI and airlockd use (engine/request_json.h).
  HttpReply run(const engine::RunRequest& request);
  // Waits until the named pool has a ready VM; false if it never gets one.
  bool wait_for_ready(const std::string& pool);

  const std::string& socket() const { return socket_; }
  // This process's environment plus AIRLOCK_RUNTIME_DIR=dir.
  std::vector<std::string> environment() const;

 private:
  std::filesystem::path dir_;
  std::string socket_;
  ChildProcess process_;
};

}  // namespace airlock::testing

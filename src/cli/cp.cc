// airlock cp: a file into a sandbox (LOCAL ID:PATH) or out of it (ID:PATH
// LOCAL), byte for byte, as the sandbox user; a file's mode goes with it.
#include <sys/stat.h>

#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"
#include "common/error.h"
#include "common/io.h"

namespace airlock::cli {

namespace {

// Uploads are one request body, which airlockd bounds.
constexpr size_t kMaxUploadBytes = 2 << 20;

struct Location {
  std::string sandbox;  // empty: a local path
  std::string path;
};

Location parse_location(const std::string& text) {
  const size_t colon = text.find(':');
  if (text.rfind("sb-", 0) == 0 && colon != std::string::npos)
    return {text.substr(0, colon), text.substr(colon + 1)};
  return {"", text};
}

int copy(const std::string& from_text, const std::string& to_text, const std::string& socket_option) {
  const Location from = parse_location(from_text);
  const Location to = parse_location(to_text);
  const std::string socket = daemon_socket_path(socket_option);
  if (from.sandbox.empty() == to.sandbox.empty()) {
    throw Error(ErrorCode::invalid_argument, "say one side as SANDBOX_ID:PATH and the other as a local path");
  }
  if (!to.sandbox.empty()) {
    struct stat info {};
    if (::stat(from.path.c_str(), &info) < 0) throw_errno("stat", from.path);
    if (!S_ISREG(info.st_mode)) throw Error(ErrorCode::invalid_argument, from.path + " is not a plain file");
    const std::string content = read_file(from.path, kMaxUploadBytes);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%o", info.st_mode & 0777);
    exchange_with_daemon(
        socket, "PUT",
        "/v1/sandboxes/" + to.sandbox + "/files?path=" + percent_encode(to.path) + "&mode=" + mode, content);
    return 0;
  }
  const std::string content = exchange_with_daemon(
      socket, "GET", "/v1/sandboxes/" + from.sandbox + "/files?path=" + percent_encode(from.path));
  write_file(to.path, content, 0644);
  return 0;
}

}  // namespace

void add_cp(CLI::App& app, Action& action) {
  struct Options {
    std::string from;
    std::string to;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb =
      app.add_subcommand("cp", "Copy a file into a sandbox (LOCAL ID:PATH) or out of it (ID:PATH LOCAL)");
  verb->add_option("from", options->from, "LOCAL_PATH or SANDBOX_ID:PATH")->required();
  verb->add_option("to", options->to, "SANDBOX_ID:PATH or LOCAL_PATH")->required();
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] { return copy(options->from, options->to, options->socket); };
  });
}

}  // namespace airlock::cli

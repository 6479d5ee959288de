// airlock cp: a file into a sandbox (LOCAL ID:PATH) or out of it (ID:PATH
// LOCAL), byte for byte, as the sandbox user; a file's mode goes with it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"
#include "common/error.h"
#include "common/io.h"

namespace airlock::cli {

namespace {

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
    UniqueFd file(::open(from.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) throw_errno("open", from.path);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%o", info.st_mode & 0777);
    transfer_with_daemon(
        socket, "PUT",
        "/v1/sandboxes/" + to.sandbox + "/files?path=" + percent_encode(to.path) + "&mode=" + mode,
        RequestBody{"", file.get(), static_cast<uint64_t>(info.st_size)}, [](std::string_view) {});
    return 0;
  }
  // Into a file beside the target, renamed over it once whole: a failed
  // download never leaves a truncated file that looks complete.
  const std::string partial = to.path + ".airlock-partial";
  UniqueFd out(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out) throw_errno("open", partial);
  try {
    transfer_with_daemon(socket, "GET",
                         "/v1/sandboxes/" + from.sandbox + "/files?path=" + percent_encode(from.path),
                         RequestBody{}, [&](std::string_view data) { write_all(out.get(), data); });
  } catch (...) {
    ::unlink(partial.c_str());
    throw;
  }
  if (::rename(partial.c_str(), to.path.c_str()) < 0) {
    ::unlink(partial.c_str());
    throw_errno("rename", to.path);
  }
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

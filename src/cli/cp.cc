// airlock cp: a file or directory into a sandbox (LOCAL ID:PATH) or out of
// it (ID:PATH LOCAL), byte for byte, as the sandbox user; modes go with
// them. Directories travel as tar streams (format=tar). As with docker cp,
// a destination that is an existing directory receives the source under
// its own name.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/local_archive.h"
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

struct RemovedAtEnd {
  std::string path;
  ~RemovedAtEnd() {
    std::error_code ignored;
    if (!path.empty()) std::filesystem::remove_all(path, ignored);
  }
};

std::string base_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string joined(const std::string& directory, const std::string& name) {
  return directory.back() == '/' ? directory + name : directory + "/" + name;
}

std::string files_target(const std::string& sandbox, const std::string& path) {
  return "/v1/sandboxes/" + sandbox + "/files?path=" + percent_encode(path);
}

// What is at a sandbox's path ("" when nothing is).
std::string remote_type(const std::string& socket, const std::string& sandbox, const std::string& path) {
  try {
    return call_daemon(socket, "GET", "/v1/sandboxes/" + sandbox + "/stat?path=" + percent_encode(path))
        .value("type", "");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) return "";
    throw;
  }
}

// As docker cp: into an existing directory under the source's name, else as the destination.
void upload(const std::string& socket, const std::string& local, const Location& to) {
  struct stat info {};
  if (::stat(local.c_str(), &info) < 0) throw_errno("stat", local);
  if (!S_ISREG(info.st_mode) && !S_ISDIR(info.st_mode)) {
    throw Error(ErrorCode::invalid_argument, local + " is not a plain file or a directory");
  }
  std::string path = to.path;
  if (remote_type(socket, to.sandbox, path) == "directory") path = joined(path, base_name(local));
  if (S_ISDIR(info.st_mode)) {
    RequestBody body;
    body.produce = [&](const BodyWriter& send) { pack_local_directory(local, send); };
    transfer_with_daemon(socket, "PUT", files_target(to.sandbox, path) + "&format=tar", body,
                         [](std::string_view) {});
    return;
  }
  UniqueFd file(::open(local.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) throw_errno("open", local);
  char mode[8];
  std::snprintf(mode, sizeof mode, "%o", info.st_mode & 0777);
  transfer_with_daemon(socket, "PUT", files_target(to.sandbox, path) + "&mode=" + mode,
                       RequestBody{"", file.get(), static_cast<uint64_t>(info.st_size), {}},
                       [](std::string_view) {});
}

// A file, directory or symlink out of a sandbox. Into a file or directory
// beside the target, renamed over it once whole: a failed download never
// leaves a truncated copy that looks complete.
void download(const std::string& socket, const Location& from, const std::string& local) {
  const std::string type =
      call_daemon(socket, "GET", "/v1/sandboxes/" + from.sandbox + "/stat?path=" + percent_encode(from.path))
          .value("type", "");
  struct stat info {};
  const std::string target = ::stat(local.c_str(), &info) == 0 && S_ISDIR(info.st_mode)
                                 ? joined(local, base_name(from.path))
                                 : local;
  const std::string partial = target + ".airlock-partial";
  if (type == "file") {
    UniqueFd out(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) throw_errno("open", partial);
    try {
      transfer_with_daemon(socket, "GET", files_target(from.sandbox, from.path), RequestBody{},
                           [&](std::string_view data) { write_all(out.get(), data); });
    } catch (...) {
      ::unlink(partial.c_str());
      throw;
    }
    if (::rename(partial.c_str(), target.c_str()) < 0) {
      ::unlink(partial.c_str());
      throw_errno("rename", target);
    }
    return;
  }
  // A directory or a symlink: a tar stream, extracted into a fresh directory.
  RemovedAtEnd cleanup;  // armed once the extraction has made its directory
  LocalExtraction extraction(partial);
  cleanup.path = partial;
  try {
    transfer_with_daemon(socket, "GET", files_target(from.sandbox, from.path) + "&format=tar", RequestBody{},
                         [&](std::string_view data) {
                           if (!extraction.feed(data)) throw Error(ErrorCode::io, "the extraction stopped");
                         });
  } catch (const Error&) {
    extraction.finish();  // its own failure, if it had one, says more
    throw;
  }
  extraction.finish();
  const std::string made =
      extraction.single_entry().empty() ? partial : joined(partial, extraction.single_entry());
  if (::rename(made.c_str(), target.c_str()) < 0) throw_errno("rename", target);
}

int copy(const std::string& from_text, const std::string& to_text, const std::string& socket_option) {
  const Location from = parse_location(from_text);
  const Location to = parse_location(to_text);
  const std::string socket = daemon_socket_path(socket_option);
  if (from.sandbox.empty() == to.sandbox.empty()) {
    throw Error(ErrorCode::invalid_argument, "say one side as SANDBOX_ID:PATH and the other as a local path");
  }
  if (!to.sandbox.empty()) {
    upload(socket, from.path, to);
  } else {
    download(socket, from, to.path);
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
  CLI::App* verb = app.add_subcommand(
      "cp", "Copy a file or directory into a sandbox (LOCAL ID:PATH) or out of it (ID:PATH LOCAL)");
  verb->add_option("from", options->from, "LOCAL_PATH or SANDBOX_ID:PATH")->required();
  verb->add_option("to", options->to, "SANDBOX_ID:PATH or LOCAL_PATH")->required();
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] { return copy(options->from, options->to, options->socket); };
  });
}

}  // namespace airlock::cli

// airlock create: a sandbox that lives until `airlock rm`, its ttl or its
// idle timeout; prints its id.
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"
#include "common/error.h"
#include "engine/sandbox_json.h"

namespace airlock::cli {

namespace {

struct CreateOptions {
  engine::SandboxRequest request;
  std::vector<std::string> mounts;
  bool json = false;
  std::string socket;
};

int create(CreateOptions& options) {
  if (options.request.run.language.empty() && options.request.run.image.empty()) {
    throw Error(ErrorCode::invalid_argument, "give a language (--lang) or an image (--image)");
  }
  for (const auto& mount : options.mounts) options.request.run.mounts.push_back(engine::parse_mount(mount));
  const nlohmann::json sandbox = call_daemon(daemon_socket_path(options.socket), "POST", "/v1/sandboxes",
                                             engine::to_json(options.request).dump());
  std::cout << (options.json ? sandbox.dump() : sandbox.at("id").get<std::string>()) << "\n";
  return 0;
}

}  // namespace

void add_create(CLI::App& app, Action& action) {
  auto options = std::make_shared<CreateOptions>();
  engine::RunRequest& run = options->request.run;
  CLI::App* verb = app.add_subcommand("create", "Create a sandbox that serves many execs; prints its id");
  verb->add_option("-l,--lang,--language", run.language,
                   "python, javascript or shell (default: the image's first language)");
  verb->add_option("--image", run.image,
                   "Root filesystem image: python, javascript, shell, python-data, ... (default: the "
                   "language's own)");
  verb->add_option("-m,--memory", run.memory_mb, "Guest memory in MiB (128-2048)")->capture_default_str();
  verb->add_option("--cpus", run.cpus, "Guest vCPUs (1-8)")->capture_default_str();
  verb->add_option("--net", run.network, "Network: none, allow:NAME[,NAME...] or full")
      ->capture_default_str();
  verb->add_option("--mount", options->mounts, "ro:HOST_DIR:GUEST_DIR (repeatable)")->allow_extra_args(false);
  verb->add_option("--pids", run.max_processes, "Processes each exec may have at once")
      ->capture_default_str();
  verb->add_option("--open-files", run.max_open_files, "Files each process may have open")
      ->capture_default_str();
  verb->add_option("--disk", run.disk_mb, "MiB the execs may write to the guest's disk")
      ->capture_default_str();
  verb->add_option("--ttl", options->request.ttl_s, "Seconds the sandbox lives, from now")
      ->capture_default_str();
  verb->add_option("--idle-timeout", options->request.idle_timeout_s,
                   "Seconds without an exec or touch after which it is destroyed")
      ->capture_default_str();
  verb->add_flag("--json", options->json, "Print the sandbox as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] { action = [options] { return create(*options); }; });
}

}  // namespace airlock::cli

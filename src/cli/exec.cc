// airlock exec: run a command in a sandbox, stream its output, exit with its
// code (125 for an Airlock error, 126/127 when the command cannot be run or
// is not found, as docker does); or, with -d, start it in the background and
// print its exec id.
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/sinks.h"
#include "cli/verbs.h"
#include "engine/run_request.h"
#include "engine/run_result.h"
#include "engine/sandbox_json.h"

namespace airlock::cli {

namespace {

struct ExecOptions {
  std::string id;
  engine::ExecRequest request;
  std::vector<std::string> env;
  bool stdin_wanted = false;
  bool detach = false;
  bool json = false;
  std::string socket;
  bool timeout_given = false;
};

int exec(ExecOptions& options) {
  for (const auto& assignment : options.env)
    options.request.env.push_back(engine::parse_env_assignment(assignment));
  if (options.stdin_wanted) {
    options.request.stdin_data = read_file("/dev/stdin", 64 << 20);
    if (!engine::is_valid_utf8(options.request.stdin_data)) {
      throw Error(ErrorCode::invalid_argument,
                  "stdin for an exec must be UTF-8 text (the API carries it as JSON)");
    }
  }
  const std::string socket = daemon_socket_path(options.socket);
  if (options.detach) {
    options.request.background = true;
    nlohmann::json body = engine::to_json(options.request);
    // Unless told, a background exec lasts as long as its sandbox.
    if (!options.timeout_given) body.erase("timeout_s");
    const nlohmann::json started =
        call_daemon(socket, "POST", "/v1/sandboxes/" + options.id + "/execs", body.dump());
    std::cout << (options.json ? started.dump() : started.at("id").get<std::string>()) << "\n";
    return 0;
  }
  TerminalSink terminal;
  CollectingSink collected;
  engine::CancelToken cancel;
  auto result = stream_via_daemon(
      socket, "/v1/sandboxes/" + options.id + "/execs", engine::to_json(options.request).dump(),
      options.json ? static_cast<engine::OutputSink&>(collected) : terminal, cancel);
  if (!result) {
    call_daemon(socket, "GET", "/v1/health");  // throws, saying how to start airlockd
    throw Error(ErrorCode::unavailable, "airlockd did not take the exec");
  }
  if (options.json) {
    std::cout << engine::to_json(*result).dump() << "\n";
  } else if (!result->error.empty() && result->status != engine::RunStatus::ok) {
    std::cerr << "airlock: " << result->error << "\n";
  }
  return engine::exit_code_for(*result);
}

}  // namespace

void add_exec(CLI::App& app, Action& action) {
  auto options = std::make_shared<ExecOptions>();
  CLI::App* verb =
      app.add_subcommand("exec", "Run a command in a sandbox: airlock exec ID -- COMMAND [ARG...]");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("command", options->request.argv, "The command and its arguments (after --)")->required();
  verb->add_option("-e,--env", options->env, "NAME=value for the command (repeatable)")
      ->allow_extra_args(false);
  verb->add_option("-w,--cwd", options->request.cwd, "Working directory in the guest")->capture_default_str();
  CLI::Option* timeout =
      verb->add_option("-t,--timeout", options->request.timeout_s,
                       "The command's time limit in seconds (30; none for --detach unless given)");
  verb->add_flag("-d,--detach", options->detach,
                 "Run it in the background and print its exec id (see airlock logs, airlock kill)");
  verb->add_flag("-i,--interactive", options->stdin_wanted,
                 "Pass this process's stdin (read whole) to the command");
  verb->add_flag("--json", options->json, "Print one JSON result object instead of streaming");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options, timeout] {
    options->timeout_given = timeout->count() > 0;
    action = [options] { return exec(*options); };
  });
}

}  // namespace airlock::cli

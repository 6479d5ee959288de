// airlock logs: an exec's output kept so far, or (-f) followed until it ends.
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/sinks.h"
#include "cli/verbs.h"

namespace airlock::cli {

void add_logs(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    std::string exec_id;
    bool follow = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("logs", "Print an exec's output: airlock logs ID EXEC_ID [-f]");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("exec_id", options->exec_id, "Exec id (from exec -d)")->required();
  verb->add_flag("-f,--follow", options->follow, "Keep printing what comes until the exec ends");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      TerminalSink terminal;
      engine::CancelToken cancel;
      const std::string target = "/v1/sandboxes/" + options->id + "/execs/" + options->exec_id + "/logs" +
                                 (options->follow ? "?follow=1" : "");
      follow_via_daemon(daemon_socket_path(options->socket), target, terminal, cancel);
      return 0;
    };
  });
}

}  // namespace airlock::cli

// airlock kill: send a signal to a running exec (KILL unless told).
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"

namespace airlock::cli {

void add_kill(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    std::string exec_id;
    std::string signal = "KILL";
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("kill", "Signal an exec: airlock kill ID EXEC_ID [--signal TERM]");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("exec_id", options->exec_id, "Exec id (from exec -d)")->required();
  verb->add_option("-s,--signal", options->signal, "A name (TERM, INT, HUP, ...) or a number")
      ->capture_default_str();
  verb->add_flag("--json", options->json, "Print the exec as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json exec =
          call_daemon(daemon_socket_path(options->socket), "POST",
                      "/v1/sandboxes/" + options->id + "/execs/" + options->exec_id + "/signal",
                      nlohmann::json{{"signal", options->signal}}.dump());
      if (options->json) std::cout << exec.dump() << "\n";
      return 0;
    };
  });
}

}  // namespace airlock::cli

// airlock rm: destroy sandboxes (an exec in progress is cancelled).
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"

namespace airlock::cli {

void add_rm(CLI::App& app, Action& action) {
  struct Options {
    std::vector<std::string> ids;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("rm", "Destroy sandboxes");
  verb->add_option("id", options->ids, "Sandbox ids")->required();
  verb->add_flag("--json", options->json, "Print each destroyed sandbox as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      for (const auto& id : options->ids) {
        const nlohmann::json gone =
            call_daemon(daemon_socket_path(options->socket), "DELETE", "/v1/sandboxes/" + id);
        std::cout << (options->json ? gone.dump() : id) << "\n";
      }
      return 0;
    };
  });
}

}  // namespace airlock::cli

// airlock touch: count as activity, so the idle timeout starts again.
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"

namespace airlock::cli {

void add_touch(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("touch", "Reset a sandbox's idle timeout (not its ttl)");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_flag("--json", options->json, "Print the sandbox as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const nlohmann::json sandbox =
          call_daemon(daemon_socket_path(options->socket), "POST", "/v1/sandboxes/" + options->id + "/touch");
      if (options->json) std::cout << sandbox.dump() << "\n";
      return 0;
    };
  });
}

}  // namespace airlock::cli

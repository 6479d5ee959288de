// airlock port: forward a loopback port of the host to a port of the
// sandbox (chosen by the kernel, printed as 127.0.0.1:N), or close it.
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/verbs.h"

namespace airlock::cli {

void add_port(CLI::App& app, Action& action) {
  struct Options {
    std::string id;
    int port = 0;
    bool close = false;
    bool json = false;
    std::string socket;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand(
      "port", "Forward a host loopback port to a port of the sandbox: airlock port ID PORT [--close]");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("port", options->port, "The port in the sandbox (on its loopback)")->required();
  verb->add_flag("--close", options->close, "Close the forward instead");
  verb->add_flag("--json", options->json, "Print the forward as JSON");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options] {
    action = [options] {
      const std::string socket = daemon_socket_path(options->socket);
      const std::string ports = "/v1/sandboxes/" + options->id + "/ports";
      if (options->close) {
        const nlohmann::json closed =
            call_daemon(socket, "DELETE", ports + "/" + std::to_string(options->port));
        if (options->json) std::cout << closed.dump() << "\n";
        return 0;
      }
      const nlohmann::json forward =
          call_daemon(socket, "POST", ports, nlohmann::json{{"port", options->port}}.dump());
      if (options->json) {
        std::cout << forward.dump() << "\n";
      } else {
        std::cout << forward.at("host").get<std::string>() << ":" << forward.at("host_port").get<int>()
                  << "\n";
      }
      return 0;
    };
  });
}

}  // namespace airlock::cli

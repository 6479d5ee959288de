// airlock-netstack: one guest's network stack, in a process of its own.
// airlockd spawns one per VM with a network (`allow:` or `full`), confined
// like QEMU (vmm/jail: own uid, namespaces, rlimits, cgroup, seccomp; an
// empty network namespace for `allow:`). A guest's raw frames are parsed
// here, by libslirp and by the egress filter's parsers, never in airlockd.
//
//   fd 3: QEMU's link, the other end of its stream netdev
//   fd 4: the channel to airlockd (network/netstack_channel.h)
//   airlock-netstack --restricted --socket-dir DIR --route NAME@GUEST_ADDRESS:PORT ...
//   airlock-netstack --full
//
// For `allow:`, route i is NAME, which the guest reaches at GUEST_ADDRESS
// (on its private network) and PORT; this process never learns an address
// of NAME on the internet, and asks airlockd for route i by its index.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "common/error.h"
#include "netstack/daemon_link.h"
#include "netstack/egress_listener.h"
#include "netstack/slirp_stack.h"
#include "netstack/syscall_filter.h"

namespace {

constexpr int kLinkFd = 3;
constexpr int kDaemonFd = 4;

struct Route {
  airlock::network::EgressRoute egress;
  std::string guest_address;
};

Route parse_route(const std::string& text) {
  const size_t at = text.find('@');
  const size_t colon = text.rfind(':');
  if (at == std::string::npos || at == 0 || colon == std::string::npos || colon < at) {
    throw airlock::Error(airlock::ErrorCode::invalid_argument,
                         "--route wants NAME@GUEST_ADDRESS:PORT, not " + text);
  }
  const std::string port = text.substr(colon + 1);
  if (port != "80" && port != "443") {
    throw airlock::Error(airlock::ErrorCode::invalid_argument, "--route port must be 80 or 443: " + text);
  }
  return {{text.substr(0, at), static_cast<uint16_t>(std::stoi(port))}, text.substr(at + 1, colon - at - 1)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"airlock-netstack: one guest's network stack (spawned by airlockd)"};
  bool restricted = false;
  bool full = false;
  std::string socket_dir;
  std::vector<std::string> route_texts;
  app.add_flag("--restricted", restricted, "an allow: network: the routes only");
  app.add_flag("--full", full, "a full network");
  app.add_option("--socket-dir", socket_dir, "where the routes' Unix sockets are made");
  app.add_option("--route", route_texts, "NAME@GUEST_ADDRESS:PORT, route i in order");
  CLI11_PARSE(app, argc, argv);
  try {
    if (restricted == full) {
      throw airlock::Error(airlock::ErrorCode::invalid_argument, "exactly one of --restricted and --full");
    }
    std::vector<Route> routes;
    for (const auto& text : route_texts) routes.push_back(parse_route(text));
    if (restricted && socket_dir.empty()) {
      throw airlock::Error(airlock::ErrorCode::invalid_argument, "--restricted needs --socket-dir");
    }

    airlock::netstack::DaemonLink daemon{airlock::UniqueFd(kDaemonFd)};
    std::vector<airlock::netstack::Forward> forwards;
    std::unique_ptr<airlock::netstack::EgressListener> listener;
    if (restricted) {
      std::vector<airlock::network::EgressRoute> egress;
      for (const auto& route : routes) egress.push_back(route.egress);
      listener = std::make_unique<airlock::netstack::EgressListener>(egress, socket_dir, daemon);
      for (size_t i = 0; i < routes.size(); ++i) {
        forwards.push_back({routes[i].guest_address, routes[i].egress.port, listener->socket_path(i)});
      }
    }
    airlock::netstack::SlirpStack stack(airlock::UniqueFd(kLinkFd), restricted, forwards);
    airlock::netstack::restrict_system_calls(full);
    if (listener) listener->start();
    stack.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "airlock-netstack: %s\n", e.what());
    ::_exit(1);
  }
  // The link is gone: QEMU exited, or the guest broke the framing.
  ::_exit(0);
}

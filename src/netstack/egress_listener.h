#pragma once

#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "netstack/daemon_link.h"
#include "network/egress.h"

namespace airlock::netstack {

// The listening side of an `allow:` stack's forwards: route i's Unix socket
// at `socket_dir`/route-i, where libslirp connects each guest connection to
// it. A thread accepts; each connection gets a thread of its own (at most
// kMaxConnections) that runs the egress filter's guest side (serve_egress)
// and asks airlockd, through `daemon`, for the server's side.
class EgressListener {
 public:
  static constexpr size_t kMaxConnections = 64;

  EgressListener(std::vector<network::EgressRoute> routes, const std::string& socket_dir, DaemonLink& daemon);
  ~EgressListener();
  EgressListener(const EgressListener&) = delete;
  EgressListener& operator=(const EgressListener&) = delete;

  const std::string& socket_path(size_t route) const { return paths_.at(route); }
  void start();

 private:
  void accept_loop();

  std::vector<network::EgressRoute> routes_;
  DaemonLink& daemon_;
  std::vector<std::string> paths_;
  std::vector<UniqueFd> listeners_;
  UniqueFd never_;  // serve_egress's stop signal: the process ends instead
  std::thread acceptor_;
};

}  // namespace airlock::netstack

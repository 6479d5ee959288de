#pragma once

// A stand-in for the internet in network tests: an HTTP and TLS-opening
// server on 127.0.0.1 that tells the client what it was asked for. Tests pin
// allowlisted names to it with the resolver map (--test-resolve NAME=127.0.0.1:PORT).
//  - TLS (first byte 0x16): answers "tls sni=<name>\n" and closes.
//  - HTTP: "/redirect" answers 302 to http://denied.test/; anything else 200
//    with "host=<Host> path=<target>\n". One request per connection.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "common/unique_fd.h"

namespace airlock::testing {

class UpstreamServer {
 public:
  // Listens on `address` (IPv4), on a port of the kernel's choosing.
  explicit UpstreamServer(const std::string& address = "127.0.0.1");
  ~UpstreamServer();
  UpstreamServer(const UpstreamServer&) = delete;
  UpstreamServer& operator=(const UpstreamServer&) = delete;

  uint16_t port() const { return port_; }
  int connections() const { return connections_; }

 private:
  void serve();

  UniqueFd listener_;
  UniqueFd stop_;
  uint16_t port_ = 0;
  std::atomic<int> connections_ = 0;
  std::thread thread_;
};

}  // namespace airlock::testing

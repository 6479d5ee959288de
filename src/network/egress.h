#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/unique_fd.h"
#include "network/policy.h"

namespace airlock::network {

// The allowlisted name a guest connection was made to (known from the guest
// address it connected to, never from what the guest says) and its port.
struct EgressRoute {
  std::string name;
  uint16_t port = 0;  // kHttpPort or kHttpsPort
};

inline constexpr uint16_t kHttpPort = 80;
inline constexpr uint16_t kHttpsPort = 443;

// Why a connection is refused; the reason is what the guest and the run's
// result see.
struct EgressRefusal {
  std::string reason;
};

// Opens the connection to a route's server, or throws EgressRefusal (after
// reporting it: whoever decides reports). In airlockd it resolves and
// connects (connect_route, upstream.h); in the network stack's process it
// asks airlockd for the connected descriptor.
using EgressConnector = std::function<UniqueFd(const EgressRoute&)>;

// Serves one guest connection of an `allow:` network: reads the opening
// bytes, checks that the name the client asks for (TLS SNI, or HTTP Host on
// every request of the connection) is the route's name, has `connect` open
// the server's side, and relays both ways until both sides are done. Returns
// early once `stop_fd` becomes readable. A refusal is answered (HTTP 403,
// TLS unrecognized_name alert); those decided here are first reported to
// `denied` with their reason. Never throws.
void serve_egress(UniqueFd guest, const EgressRoute& route, const EgressConnector& connect, int stop_fd,
                  const std::function<void(const std::string&)>& denied);

// Waits for `events` on fd; false on timeout or once stop_fd is readable.
bool wait_for(int fd, short events, int stop_fd, std::chrono::steady_clock::time_point deadline);

}  // namespace airlock::network

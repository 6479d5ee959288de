#pragma once

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

// Serves one guest connection of an `allow:` network: reads the opening
// bytes, checks that the name the client asks for (TLS SNI, or HTTP Host on
// every request of the connection) is the route's name, resolves it on the
// host, refuses every address that is not public (unless the resolver map
// pins the name to a test server), connects, and relays both ways until both
// sides are done. Returns early once `stop_fd` becomes readable. A refusal
// is answered (HTTP 403, TLS unrecognized_name alert), then reported to
// `denied` with its reason. Never throws.
void serve_egress(UniqueFd guest, const EgressRoute& route, const ResolverMap& resolver, int stop_fd,
                  const std::function<void(const std::string&)>& denied);

}  // namespace airlock::network

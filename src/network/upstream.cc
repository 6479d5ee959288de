#include "network/upstream.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace airlock::network {

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);

std::vector<Endpoint> resolve(const EgressRoute& route, const ResolverMap& resolver) {
  std::vector<Endpoint> usable;
  std::string first_refusal;
  auto consider = [&](const Endpoint& endpoint) {
    if (auto why = forbidden_address_reason(reinterpret_cast<const sockaddr*>(&endpoint.address))) {
      if (first_refusal.empty()) first_refusal = endpoint.describe() + " is " + *why;
      return;
    }
    usable.push_back(endpoint);
  };
  auto with_port = [](Endpoint endpoint, uint16_t port) {
    if (endpoint.address.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&endpoint.address)->sin_port = htons(port);
    } else {
      reinterpret_cast<sockaddr_in6*>(&endpoint.address)->sin6_port = htons(port);
    }
    return endpoint;
  };
  if (auto entry = resolver.find(route.name); entry != resolver.end()) {
    if (entry->second.pinned) return {entry->second.endpoint};
    consider(with_port(entry->second.endpoint, route.port));
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int status = ::getaddrinfo(route.name.c_str(), nullptr, &hints, &found);
    if (status != 0)
      throw EgressRefusal{route.name + " does not resolve on the host (" + ::gai_strerror(status) + ")"};
    for (addrinfo* info = found; info; info = info->ai_next) {
      if (info->ai_addrlen > sizeof(sockaddr_storage)) continue;
      Endpoint endpoint;
      std::memcpy(&endpoint.address, info->ai_addr, info->ai_addrlen);
      endpoint.length = info->ai_addrlen;
      consider(with_port(endpoint, route.port));
    }
    ::freeaddrinfo(found);
  }
  if (usable.empty()) {
    throw EgressRefusal{route.name + " resolves to no public address (" +
                        (first_refusal.empty() ? std::string("no address") : first_refusal) + ")"};
  }
  return usable;
}

UniqueFd connect_upstream(const std::vector<Endpoint>& endpoints, int stop_fd, const std::string& name) {
  std::string last_error;
  for (const auto& endpoint : endpoints) {
    UniqueFd socket(::socket(endpoint.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket) throw_errno("socket");
    if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&endpoint.address), endpoint.length) == 0) {
      return socket;
    }
    if (errno != EINPROGRESS) {
      last_error = endpoint.describe() + ": " + std::strerror(errno);
      continue;
    }
    if (!wait_for(socket.get(), POLLOUT, stop_fd, std::chrono::steady_clock::now() + kConnectTimeout)) {
      last_error = endpoint.describe() + ": no answer within 10 s";
      continue;
    }
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error == 0) return socket;
    last_error = endpoint.describe() + ": " + std::strerror(error);
  }
  throw EgressRefusal{"could not connect to " + name + " (" + last_error + ")"};
}

}  // namespace

UniqueFd connect_route(const EgressRoute& route, const ResolverMap& resolver, int stop_fd) {
  return connect_upstream(resolve(route, resolver), stop_fd, route.name);
}

}  // namespace airlock::network

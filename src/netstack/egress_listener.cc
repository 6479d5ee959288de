#include "netstack/egress_listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "common/error.h"
#include "common/thread_group.h"

namespace airlock::netstack {

EgressListener::EgressListener(std::vector<network::EgressRoute> routes, const std::string& socket_dir,
                               DaemonLink& daemon)
    : routes_(std::move(routes)), daemon_(daemon), never_(::eventfd(0, EFD_CLOEXEC)) {
  if (!never_) throw_errno("eventfd");
  for (size_t i = 0; i < routes_.size(); ++i) {
    const std::string path = socket_dir + "/route-" + std::to_string(i);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) {
      throw Error(ErrorCode::invalid_argument, "network socket path too long: " + path);
    }
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener) throw_errno("socket");
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
      throw_errno("bind", path);
    }
    if (::listen(listener.get(), 128) < 0) throw_errno("listen", path);
    paths_.push_back(path);
    listeners_.push_back(std::move(listener));
  }
}

EgressListener::~EgressListener() {
  // Only reached if setting up failed; once running, the process ends with exit().
  if (acceptor_.joinable()) acceptor_.detach();
}

void EgressListener::start() {
  // Accepting apart from the stack: libslirp connects to these sockets with
  // a blocking connect(), which must never wait on its own thread.
  acceptor_ = std::thread([this] { accept_loop(); });
}

void EgressListener::accept_loop() {
  ThreadGroup connections(kMaxConnections);
  std::vector<pollfd> fds;
  int backoff_ms = -1;
  for (;;) {
    fds.clear();
    for (const auto& listener : listeners_) fds.push_back({listener.get(), POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), backoff_ms);
    backoff_ms = -1;
    if (ready < 0 && errno != EINTR) return;
    for (size_t i = 0; ready > 0 && i < listeners_.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      UniqueFd accepted(::accept4(listeners_[i].get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!accepted) {
        // Out of descriptors: wait a little instead of waking at once, forever.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) backoff_ms = 100;
        continue;
      }
      const network::EgressRoute& route = routes_[i];
      const int fd = accepted.release();
      const bool started = connections.start([this, fd, i, &route] {
        serve_egress(
            UniqueFd(fd), route,
            [this, i](const network::EgressRoute&) { return daemon_.connect(static_cast<uint32_t>(i)); },
            never_.get(), [this](const std::string& reason) { daemon_.report_denial(reason); });
      });
      if (!started) {
        ::close(fd);
        daemon_.report_denial("more than " + std::to_string(kMaxConnections) + " connections at once to " +
                              route.name);
      }
    }
  }
}

}  // namespace airlock::netstack

#include "support/upstream_server.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <string>

#include "common/error.h"
#include "common/io.h"
#include "network/sniff.h"

namespace airlock::testing {

namespace {

void answer(int connection) {
  std::string opening;
  char buffer[4096];
  for (;;) {
    pollfd ready{connection, POLLIN, 0};
    if (::poll(&ready, 1, 5000) != 1) return;
    const ssize_t n = ::read(connection, buffer, sizeof buffer);
    if (n <= 0) return;
    opening.append(buffer, static_cast<size_t>(n));
    if (opening[0] == 0x16) {
      auto hello = network::sniff_client_hello(opening);
      if (hello.status == network::SniffStatus::incomplete) continue;
      write_all(connection, "tls sni=" + hello.server_name + "\n");
      return;
    }
    const size_t end = opening.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    // The Host as sent (an address, under `full`), canonical when it is a name.
    auto head = network::sniff_http_request(opening);
    std::string host = head.host;
    if (host.empty()) {
      const size_t start = opening.find("\r\nHost: ");
      if (start != std::string::npos && start < end)
        host = opening.substr(start + 8, opening.find("\r\n", start + 2) - start - 8);
    }
    const std::string line = opening.substr(0, opening.find("\r\n"));
    const std::string target = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
    if (target == "/redirect") {
      write_all(connection,
                "HTTP/1.1 302 Found\r\nLocation: http://denied.test/\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n");
      return;
    }
    const std::string body = "host=" + host + " path=" + target + "\n";
    write_all(connection, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    return;
  }
}

}  // namespace

UpstreamServer::UpstreamServer(const std::string& bind_address) {
  listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener_) throw_errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (::inet_pton(AF_INET, bind_address.c_str(), &address.sin_addr) != 1) {
    throw Error(ErrorCode::invalid_argument, "not an IPv4 address: " + bind_address);
  }
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) throw_errno("bind");
  socklen_t length = sizeof address;
  ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  if (::listen(listener_.get(), 64) < 0) throw_errno("listen");
  stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  thread_ = std::thread([this] { serve(); });
}

UpstreamServer::~UpstreamServer() {
  const uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(stop_.get(), &one, sizeof one);
  thread_.join();
}

void UpstreamServer::serve() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection) continue;
    ++connections_;
    try {
      answer(connection.get());
    } catch (const Error&) {
    }
  }
}

}  // namespace airlock::testing

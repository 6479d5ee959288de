#include "network/egress.h"

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "network/sniff.h"

namespace airlock::network {

namespace {

using Clock = std::chrono::steady_clock;

// How long a client may take to say where it is going.
constexpr auto kOpeningTimeout = std::chrono::seconds(10);
// Bytes buffered toward one side before the other side is no longer read.
constexpr size_t kMaxBuffered = 256 * 1024;

using Refusal = EgressRefusal;

// Requests on an HTTP connection, checked one by one: each head must name the
// route's host before it and its body are passed on. After a protocol switch
// (WebSocket) the rest of the stream is passed as it is.
class HttpRequestGate {
 public:
  explicit HttpRequestGate(const EgressRoute& route) : route_(route) {}

  // Moves what may pass from `pending` to `out`. A request that may not
  // pass stops everything after it: refusal() says why.
  void pass(std::string& pending, std::string& out) {
    while (!pending.empty() && !refusal_) {
      if (raw_) {
        out += pending;
        pending.clear();
        return;
      }
      if (chunked_) {
        ChunkedBodyScanner::Status status;
        const size_t n = chunked_->scan(pending, status);
        if (status == ChunkedBodyScanner::Status::invalid) {
          refusal_ = Refusal{"HTTP request refused: " + chunked_->problem()};
          pending.clear();
          return;
        }
        out.append(pending, 0, n);
        pending.erase(0, n);
        if (status == ChunkedBodyScanner::Status::done) chunked_.reset();
        continue;
      }
      if (body_left_ > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(body_left_, pending.size()));
        out.append(pending, 0, n);
        pending.erase(0, n);
        body_left_ -= n;
        continue;
      }
      // After a WebSocket handshake nothing more passes until the server has
      // answered it: only its 101 turns the rest of the stream into raw bytes.
      if (awaiting_switch_) return;
      // Empty lines before a request line are ignored, as servers do (RFC 9112, 2.2).
      if (pending.rfind("\r\n", 0) == 0) {
        pending.erase(0, 2);
        continue;
      }
      // A head is parsed once it is whole (or too long): a client sending it
      // a byte at a time must not make each byte cost a parse of all before.
      const size_t end = pending.find("\r\n\r\n", scanned_ > 3 ? scanned_ - 3 : 0);
      scanned_ = pending.size();
      if (end == std::string::npos && pending.size() < kMaxSniffBytes) return;
      scanned_ = 0;
      HttpRequestHead head = sniff_http_request(pending);
      if (head.status == SniffStatus::incomplete) return;
      try {
        check(head);
      } catch (const Refusal& refusal) {
        refusal_ = refusal;
        pending.clear();
        return;
      }
      out.append(pending, 0, head.head_bytes);
      pending.erase(0, head.head_bytes);
      body_left_ = head.content_length;
      if (head.chunked) chunked_.emplace();
      // Only the connection's first request may switch: its answer is the
      // first the server sends, so it can be recognised without parsing responses.
      awaiting_switch_ = head.upgrade && first_request_;
      first_request_ = false;
    }
  }

  // Bytes from the server, while a handshake waits for its answer.
  void observe_response(std::string_view bytes) {
    if (!awaiting_switch_) return;
    status_line_.append(bytes.substr(0, 1024));
    // The first line decides, however it ends; anything but a 101 keeps the stream checked.
    const size_t end = status_line_.find('\n');
    if (end == std::string::npos && status_line_.size() < 1024) return;
    // "HTTP/1.1 101 Switching Protocols"
    const std::string line = status_line_.substr(0, end);
    raw_ = line.size() >= 12 && line.compare(0, 5, "HTTP/") == 0 &&
           line.compare(line.find(' ') + 1, 3, "101") == 0;
    awaiting_switch_ = false;
  }

  void check(const HttpRequestHead& head) const {
    if (head.status == SniffStatus::invalid) throw Refusal{"HTTP request refused: " + head.problem};
    if (head.host != route_.name) {
      throw Refusal{"HTTP Host '" + head.host + "' is not the name connected to (" + route_.name + ")"};
    }
    if (head.port && *head.port != route_.port) {
      throw Refusal{"HTTP Host names port " + std::to_string(*head.port) + ", the connection is to port " +
                    std::to_string(route_.port)};
    }
  }

  const std::optional<Refusal>& refusal() const { return refusal_; }
  bool awaiting_switch() const { return awaiting_switch_; }

 private:
  const EgressRoute& route_;
  std::optional<Refusal> refusal_;
  uint64_t body_left_ = 0;
  std::optional<ChunkedBodyScanner> chunked_;
  size_t scanned_ = 0;  // bytes of the pending head already searched for its end
  bool first_request_ = true;
  bool awaiting_switch_ = false;
  std::string status_line_;
  bool raw_ = false;
};

std::string forbidden_response(const std::string& reason) {
  const std::string body = "airlock network filter: " + reason + "\n";
  return "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// TLS alert record: fatal (2), unrecognized_name (112).
constexpr char kUnrecognizedNameAlert[] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70};

void send_best_effort(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void answer_refusal(int guest, bool https, const std::string& reason) {
  if (https) {
    send_best_effort(guest, std::string_view(kUnrecognizedNameAlert, sizeof kUnrecognizedNameAlert));
  } else {
    send_best_effort(guest, forbidden_response(reason));
  }
}

// One direction of the relay: bytes read from `from` wait in `buffer` until `to` takes them.
struct Direction {
  int from;
  int to;
  std::string buffer;
  bool from_closed = false;
  bool to_shut = false;
};

bool read_into(int fd, std::string& into, bool& closed) {
  char chunk[16384];
  const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
  if (n > 0) {
    into.append(chunk, static_cast<size_t>(n));
    return true;
  }
  if (n == 0) {
    closed = true;
    return true;
  }
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

bool flush(Direction& direction) {
  while (!direction.buffer.empty()) {
    const ssize_t n =
        ::send(direction.to, direction.buffer.data(), direction.buffer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    direction.buffer.erase(0, static_cast<size_t>(n));
  }
  if (direction.from_closed && !direction.to_shut) {
    ::shutdown(direction.to, SHUT_WR);
    direction.to_shut = true;
  }
  return true;
}

// Relays until both directions are done. A later HTTP request that may not
// pass ends the outward direction: the server answers what it was sent,
// then the connection closes; the refusal is reported when it is found.
void relay(int guest, int upstream, std::string opening, HttpRequestGate* gate, int stop_fd,
           const std::function<void(const std::string&)>& denied) {
  Direction outward{guest, upstream, {}};
  Direction inward{upstream, guest, {}};
  std::string unchecked = std::move(opening);
  bool guest_eof = false;
  // Once the guest has said all it will, the outward direction ends: after
  // whatever still waits for the server's answer to a handshake. A request
  // left incomplete at the end goes nowhere.
  auto settle = [&] {
    if (guest_eof && (!(gate && gate->awaiting_switch()) || inward.from_closed)) {
      unchecked.clear();
      outward.from_closed = true;
    }
  };
  auto admit = [&] {
    if (gate) {
      gate->pass(unchecked, outward.buffer);
    } else {
      outward.buffer += unchecked;
      unchecked.clear();
    }
  };
  admit();
  bool reported = false;
  for (;;) {
    if (gate && gate->refusal() && !reported) {
      if (denied) denied(gate->refusal()->reason);
      reported = true;
      outward.from_closed = true;
    }
    if (!flush(outward) || !flush(inward)) return;
    if (outward.to_shut && inward.to_shut) return;
    pollfd fds[3] = {{guest, 0, 0}, {upstream, 0, 0}, {stop_fd, POLLIN, 0}};
    if (!guest_eof && !reported && outward.buffer.size() + unchecked.size() < kMaxBuffered) {
      fds[0].events |= POLLIN;
    }
    if (!inward.buffer.empty()) fds[0].events |= POLLOUT;
    if (!inward.from_closed && inward.buffer.size() < kMaxBuffered) fds[1].events |= POLLIN;
    if (!outward.buffer.empty()) fds[1].events |= POLLOUT;
    // A socket we want nothing from is left out: a hung-up one would
    // otherwise wake poll at once, again and again.
    for (int i = 0; i < 2; ++i) {
      if (fds[i].events == 0) fds[i].fd = -1;
    }
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[2].revents) return;
    if ((fds[0].events & POLLIN) && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (!read_into(guest, unchecked, guest_eof)) return;
      admit();
      settle();
    }
    if ((fds[1].events & POLLIN) && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const size_t before = inward.buffer.size();
      if (!read_into(upstream, inward.buffer, inward.from_closed)) return;
      if (gate) {
        gate->observe_response(std::string_view(inward.buffer).substr(before));
        admit();  // what waited for the server's answer may go on now
        settle();
      }
    }
  }
}

}  // namespace

bool wait_for(int fd, short events, int stop_fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const int ready = ::poll(fds, 2, left < 0 ? 0 : static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0 && !fds[1].revents;
  }
}

void serve_egress(UniqueFd guest, const EgressRoute& route, const EgressConnector& connect, int stop_fd,
                  const std::function<void(const std::string&)>& denied) {
  const bool https = route.port == kHttpsPort;
  std::string opening;
  try {
    // What the client says first decides where it may go.
    const auto deadline = Clock::now() + kOpeningTimeout;
    std::optional<HttpRequestGate> gate;
    if (!https) gate.emplace(route);
    for (;;) {
      if (https) {
        ClientHello hello = sniff_client_hello(opening);
        if (hello.status == SniffStatus::invalid) throw Refusal{"TLS connection refused: " + hello.problem};
        if (hello.status == SniffStatus::complete) {
          if (hello.server_name != route.name) {
            throw Refusal{"TLS server name '" + hello.server_name + "' is not the name connected to (" +
                          route.name + ")"};
          }
          break;
        }
      } else {
        while (opening.rfind("\r\n", 0) == 0) opening.erase(0, 2);  // empty lines before a request
        HttpRequestHead head = sniff_http_request(opening);
        if (head.status != SniffStatus::incomplete) {
          gate->check(head);
          break;
        }
      }
      if (!wait_for(guest.get(), POLLIN, stop_fd, deadline)) return;
      bool closed = false;
      if (!read_into(guest.get(), opening, closed) || closed) return;
    }
    UniqueFd upstream;
    try {
      upstream = connect(route);
    } catch (const Refusal& refusal) {
      // The connector has reported it already (it decided): only the guest is told.
      answer_refusal(guest.get(), https, refusal.reason);
      return;
    }
    relay(guest.get(), upstream.get(), std::move(opening), gate ? &*gate : nullptr, stop_fd, denied);
  } catch (const Refusal& refusal) {
    // Recorded before the guest can learn of it: a program that exits on the
    // answer must find its refusal in its run's result.
    if (denied) denied(refusal.reason);
    answer_refusal(guest.get(), https, refusal.reason);
  } catch (const std::exception& e) {
    if (denied) denied(std::string("connection to ") + route.name + " failed: " + e.what());
  }
}

}  // namespace airlock::network

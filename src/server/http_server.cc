#include "server/http_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <system_error>
#include <thread>

#include "common/error.h"
#include "server/beast_websocket.h"
#include "server/http_message.h"

namespace airlock::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Socket = asio::local::stream_protocol::socket;

namespace {

// Every write has a deadline: a client that stops reading is cut off (its
// write fails, and a streamed run is cancelled) instead of holding the thread.
template <typename Stream>
class BeastWriter final : public ResponseWriter {
 public:
  // `fd`: the connection as the server registered it (deadlines are kept by it).
  BeastWriter(Stream& socket, bool keep_alive, HttpServer& server, int fd)
      : socket_(socket), keep_alive_(keep_alive), server_(server), fd_(fd) {}

  void send(int status, const std::string& content_type, std::string body) override {
    http::response<http::string_body> response{static_cast<http::status>(status), 11};
    response.set(http::field::server, "airlockd");
    response.set(http::field::content_type, content_type);
    response.keep_alive(keep_alive_);
    response.body() = std::move(body);
    response.prepare_payload();
    beast::error_code ignored;
    Deadline deadline(*this);
    http::write(socket_, response, ignored);
    done_ = true;
  }

  void begin_stream(int status, const std::string& content_type) override {
    http::response<http::empty_body> response{static_cast<http::status>(status), 11};
    response.set(http::field::server, "airlockd");
    response.set(http::field::content_type, content_type);
    response.keep_alive(keep_alive_);
    response.chunked(true);
    http::response_serializer<http::empty_body> serializer{response};
    beast::error_code error;
    Deadline deadline(*this);
    http::write_header(socket_, serializer, error);
    client_gone_ = static_cast<bool>(error);
  }

  bool write_chunk(const std::string& data) override {
    if (client_gone_) return false;
    beast::error_code error;
    Deadline deadline(*this);
    asio::write(socket_, http::make_chunk(asio::buffer(data)), error);
    client_gone_ = static_cast<bool>(error);
    return !client_gone_;
  }

  void end_stream() override {
    if (!client_gone_) {
      beast::error_code ignored;
      Deadline deadline(*this);
      asio::write(socket_, http::make_chunk_last(), ignored);
    }
    done_ = true;
  }

  void abort_stream() override {
    beast::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    client_gone_ = true;
    done_ = true;
  }

  bool done() const { return done_; }

 private:
  struct Deadline {
    explicit Deadline(BeastWriter& writer) : writer_(writer) {
      writer_.server_.arm_deadline(writer_.fd_, writer_.server_.limits().write);
    }
    ~Deadline() { writer_.server_.disarm_deadline(writer_.fd_); }
    BeastWriter& writer_;
  };

  Stream& socket_;
  bool keep_alive_;
  HttpServer& server_;
  int fd_;
  bool client_gone_ = false;
  bool done_ = false;
};

// Refuses a connection beyond the cap without giving it a thread: one small
// answer that fits the socket buffer, never waited on.
void refuse_busy(int fd) {
  static const std::string body =
      R"({"error":{"code":"overloaded","message":"too many connections to airlockd; try again","retryable":true}})";
  static const std::string response =
      "HTTP/1.1 503 Service Unavailable\r\nServer: airlockd\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nRetry-After: 1\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Constant time, so the comparison leaks nothing about the token.
bool same_secret(const std::string& given, const std::string& expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i] ^ expected[i % std::max<size_t>(1, expected.size())]);
  }
  return difference == 0;
}

std::string error_body(const std::string& code, const std::string& message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) escaped += c;
  }
  return R"({"error":{"code":")" + code + R"(","message":")" + escaped + R"(","retryable":false}})";
}

// Tells a client that waits for it (curl does, for a large body) to send its body.
template <typename Stream>
bool send_continue(Stream& socket) {
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  beast::error_code error;
  asio::write(socket, asio::buffer(kContinue.data(), kContinue.size()), error);
  return !error;
}

// A streamed route's body, read straight from the socket into the
// handler's buffer (Beast's buffer_body), a deadline on every read.
template <typename Stream>
class BeastBodyStream final : public BodyStream {
 public:
  BeastBodyStream(Stream& socket, beast::flat_buffer& buffer, RequestParser&& parser, HttpServer& server,
                  int fd)
      : socket_(socket), buffer_(buffer), parser_(std::move(parser)), server_(server), fd_(fd) {
    if (parser_.content_length()) size_ = *parser_.content_length();
  }

  std::optional<uint64_t> size() const override { return size_; }

  size_t read(char* data, size_t max) override {
    if (parser_.is_done() || max == 0) return 0;
    parser_.get().body().data = data;
    parser_.get().body().size = max;
    beast::error_code error;
    server_.arm_deadline(fd_, server_.limits().body);
    http::read(socket_, buffer_, parser_, error);
    server_.disarm_deadline(fd_);
    if (error == http::error::need_buffer) error = {};
    if (error) throw Error(ErrorCode::io, "the client stopped sending the body: " + error.message());
    return max - parser_.get().body().size;
  }

  // Reads what the handler left of the body (up to 64 MiB) and drops it:
  // a socket closed with unread bytes resets the connection, and the client
  // would lose the answer it was sent (a refusal before its upload ended).
  void discard_rest() {
    std::string scratch(64 * 1024, '\0');
    try {
      for (size_t dropped = 0; dropped < (64 << 20);) {
        const size_t n = read(scratch.data(), scratch.size());
        if (n == 0) return;
        dropped += n;
      }
    } catch (const Error&) {
      // The client stopped sending or went away: nothing more to save.
    }
  }

 private:
  Stream& socket_;
  beast::flat_buffer& buffer_;
  http::request_parser<http::buffer_body> parser_;
  HttpServer& server_;
  int fd_;
  std::optional<uint64_t> size_;
};

}  // namespace

void HttpServer::stream_bodies(std::function<bool(const std::string&, const std::string&)> streams,
                               uint64_t max_bytes) {
  streams_body_ = std::move(streams);
  max_streamed_bytes_ = max_bytes;
}

HttpServer::HttpServer(std::string socket_path, HttpHandler handler, ConnectionLimits limits)
    : socket_path_(std::move(socket_path)), handler_(std::move(handler)), limits_(limits) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof address.sun_path) {
    throw Error(ErrorCode::invalid_argument, "socket path " + socket_path_ + " is too long");
  }
  std::copy(socket_path_.begin(), socket_path_.end(), address.sun_path);
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener_) throw_errno("socket");
  // A socket file left by a daemon that died is replaced; a live one is not.
  if (::connect(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    throw Error(ErrorCode::unavailable, "another airlockd is already serving on " + socket_path_);
  }
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::unlink(socket_path_.c_str());
  // Owner-only from the moment it exists: bind under a restrictive umask.
  mode_t old_mask = ::umask(0177);
  int bound = ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::umask(old_mask);
  if (bound < 0) throw_errno("bind", socket_path_);
  if (::listen(listener_.get(), 64) < 0) throw_errno("listen", socket_path_);
}

HttpServer::~HttpServer() {
  stop();
  ::unlink(socket_path_.c_str());
}

void HttpServer::stop() {
  stopping_ = true;
  std::lock_guard lock(mutex_);
  for (const auto& [fd, connection] : open_fds_) {
    // A request being served must not look like a client that hung up.
    if (!connection.busy) ::shutdown(fd, SHUT_RD);
  }
}

void HttpServer::set_busy(int fd, bool busy) {
  std::lock_guard lock(mutex_);
  auto it = open_fds_.find(fd);
  if (it == open_fds_.end()) return;
  it->second.busy = busy;
  // Idle again after stop(): nothing more will be read from it.
  if (!busy && stopping_) ::shutdown(fd, SHUT_RD);
}

void HttpServer::arm_deadline(int fd, std::chrono::milliseconds within) {
  std::lock_guard lock(mutex_);
  if (auto it = open_fds_.find(fd); it != open_fds_.end()) it->second.deadline = Clock::now() + within;
}

void HttpServer::disarm_deadline(int fd) {
  std::lock_guard lock(mutex_);
  if (auto it = open_fds_.find(fd); it != open_fds_.end()) it->second.deadline = Clock::time_point::max();
}

void HttpServer::enforce_deadlines() {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  for (auto& [fd, connection] : open_fds_) {
    if (connection.deadline > now) continue;
    // The blocked read or write fails; the connection's thread ends it.
    ::shutdown(fd, SHUT_RDWR);
    connection.deadline = Clock::time_point::max();
  }
}

void HttpServer::accept_one(int listener, bool tcp) {
  int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  if (!tcp) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) < 0 ||
        (peer.uid != ::getuid() && peer.uid != 0)) {
      ::close(fd);
      return;
    }
  }
  {
    std::lock_guard lock(mutex_);
    int& count = tcp ? tcp_connections_ : unix_connections_;
    if (count >= (tcp ? limits_.max_tcp : limits_.max_unix)) {
      refuse_busy(fd);
      ::close(fd);
      return;
    }
    ++count;
    // Until its head arrives, a new connection has the head's deadline.
    open_fds_[fd] = {Clock::now() + limits_.head, false};
  }
  try {
    std::thread([this, fd, tcp] {
      try {
        handle_connection(fd, tcp);
      } catch (...) {
      }
      std::lock_guard lock(mutex_);
      // Closed only now, under the lock, so stop() never shuts a reused number.
      open_fds_.erase(fd);
      ::close(fd);
      --(tcp ? tcp_connections_ : unix_connections_);
      idle_.notify_all();
    }).detach();
  } catch (const std::system_error&) {
    // No thread to be had: this connection is refused, the server goes on.
    std::lock_guard lock(mutex_);
    open_fds_.erase(fd);
    refuse_busy(fd);
    ::close(fd);
    --(tcp ? tcp_connections_ : unix_connections_);
  }
}

void HttpServer::serve(std::chrono::milliseconds grace, const std::function<void()>& on_grace_over) {
  while (!stopping_) {
    pollfd listeners[2] = {{listener_.get(), POLLIN, 0}, {tcp_listener_.get(), POLLIN, 0}};
    const int ready = ::poll(listeners, 2, 100);
    enforce_deadlines();
    if (ready <= 0) continue;
    for (int which = 0; which < 2; ++which) {
      if (listeners[which].revents & POLLIN) accept_one(listeners[which].fd, which == 1);
    }
  }
  // Drain: running requests finish within the grace period; then what is
  // left is cancelled (its result still written), and at last cut off.
  // Draining connections keep their deadlines: a stalled writer cannot hold the exit.
  const auto grace_over = Clock::now() + grace;
  const auto cut_off = grace_over + std::chrono::seconds(10);
  bool cancelled = false, cut = false;
  std::unique_lock lock(mutex_);
  while (unix_connections_ + tcp_connections_ > 0) {
    idle_.wait_for(lock, std::chrono::milliseconds(100));
    const auto now = Clock::now();
    if (!cut && now >= cut_off) {
      for (const auto& [fd, connection] : open_fds_) ::shutdown(fd, SHUT_RDWR);
      cut = true;
    }
    lock.unlock();
    if (!cancelled && now >= grace_over) {
      if (on_grace_over) on_grace_over();
      cancelled = true;
    }
    enforce_deadlines();
    lock.lock();
  }
}

template <typename Stream>
void HttpServer::serve_stream(Stream& socket, asio::io_context& context, int fd, bool needs_token) {
  beast::flat_buffer buffer;
  for (bool first = true;; first = false) {
    RequestParser parser;
    apply_request_limits(parser);
    // A streamed route may announce more; the head decides which it is.
    if (streams_body_) parser.body_limit(std::max<uint64_t>(kMaxBodyBytes, max_streamed_bytes_));
    beast::error_code error;
    // The first head was given its deadline at accept; later ones wait at most `idle`.
    if (!first) arm_deadline(fd, limits_.idle);
    http::read_header(socket, buffer, parser, error);
    if (error == http::error::header_limit) {
      BeastWriter<Stream> writer(socket, false, *this, fd);
      writer.send(431, "application/json", error_body("too_large", "request head exceeds 16 KiB"));
      return;
    }
    // Beast refuses a Content-Length beyond the body limit with the head.
    const bool announced_too_large = error == http::error::body_limit;
    if (error && !announced_too_large) return;  // closed, timed out, or not HTTP
    // Nothing of the body is read for a caller that has not shown a token.
    const std::string authorization(parser.get()[http::field::authorization]);
    const bool from_operator =
        !needs_token || (!operator_token_.empty() && same_secret(authorization, "Bearer " + operator_token_));
    if (!from_operator && !same_secret(authorization, "Bearer " + token_)) {
      BeastWriter<Stream> writer(socket, false, *this, fd);
      writer.send(401, "application/json", error_body("unauthorized", "missing or wrong bearer token"));
      return;
    }
    set_busy(fd, true);
    if (!announced_too_large && streams_body_) {
      const auto& head = parser.get();
      const std::string method(head.method_string());
      std::string target(head.target());
      target = target.substr(0, target.find('?'));
      if (streams_body_(method, target)) {
        BeastWriter<Stream> writer(socket, false, *this, fd);
        if (beast::iequals(head[http::field::expect], "100-continue") && !send_continue(socket)) return;
        HttpRequest request = to_http_request(head);
        request.client_fd = socket.native_handle();
        request.from_operator = from_operator;
        BeastBodyStream<Stream> body(socket, buffer, std::move(parser), *this, fd);
        request.body_stream = &body;
        // The handler may leave some of the body unread: the connection ends with its answer.
        handler_(request, writer);
        if (!writer.done()) writer.send(500, "application/json", error_body("internal", "no response"));
        body.discard_rest();
        return;
      }
      // Any other route keeps the usual limit.
      if (parser.content_length() && *parser.content_length() > kMaxBodyBytes) {
        BeastWriter<Stream> writer(socket, false, *this, fd);
        writer.send(
            413, "application/json",
            error_body("too_large", "request body exceeds " + std::to_string(kMaxBodyBytes) + " bytes"));
        return;
      }
      parser.body_limit(kMaxBodyBytes);
    }
    arm_deadline(fd, limits_.body);
    if (!announced_too_large && beast::iequals(parser.get()[http::field::expect], "100-continue") &&
        !send_continue(socket)) {
      return;
    }
    // A body announced too large is refused before a byte of it is read.
    if (!announced_too_large) http::read(socket, buffer, parser, error);
    disarm_deadline(fd);
    if (announced_too_large || error == http::error::body_limit) {
      BeastWriter<Stream> writer(socket, false, *this, fd);
      writer.send(
          413, "application/json",
          error_body("too_large", "request body exceeds " + std::to_string(kMaxBodyBytes) + " bytes"));
      return;
    }
    if (error) return;
    auto& message = parser.get();
    HttpRequest request = to_http_request(message);
    request.client_fd = socket.native_handle();
    request.from_operator = from_operator;
    // A request for a WebSocket that its handler takes becomes one for the rest of the connection.
    std::optional<BeastWebSocketUpgrade<Stream>> upgrade;
    if (beast::websocket::is_upgrade(message)) {
      upgrade.emplace(socket, context, message);
      request.upgrade = &*upgrade;
    }
    const bool keep_alive = message.keep_alive() && !stopping_ && !upgrade;
    BeastWriter<Stream> writer(socket, keep_alive, *this, fd);
    handler_(request, writer);
    if (upgrade && upgrade->accepted()) return;
    if (!writer.done()) writer.send(500, "application/json", error_body("internal", "no response"));
    if (!keep_alive) return;
    set_busy(fd, false);
  }
}

void HttpServer::handle_connection(int fd, bool tcp) {
  asio::io_context context;
  // The socket object owns a duplicate; the original stays registered for stop().
  int own = ::dup(fd);
  if (own < 0) return;
  if (tcp) {
    asio::ip::tcp::socket socket(context, asio::ip::tcp::v4(), own);
    serve_stream(socket, context, fd, true);
  } else {
    Socket socket(context, asio::local::stream_protocol(), own);
    serve_stream(socket, context, fd, false);
  }
}

void HttpServer::listen_tcp(const std::string& host, int port, std::string token,
                            std::string operator_token) {
  if (host != "127.0.0.1" && host != "localhost") {
    throw Error(ErrorCode::invalid_argument,
                "refusing to listen on " + host + ": TCP is for loopback (127.0.0.1) only");
  }
  if (token.size() < 16)
    throw Error(ErrorCode::invalid_argument, "the bearer token must be at least 16 characters");
  if (!operator_token.empty() && (operator_token.size() < 16 || operator_token == token)) {
    throw Error(ErrorCode::invalid_argument,
                "the operator token must be at least 16 characters and differ from the bearer token");
  }
  token_ = std::move(token);
  operator_token_ = std::move(operator_token);
  tcp_listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!tcp_listener_) throw_errno("socket");
  int one = 1;
  ::setsockopt(tcp_listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(tcp_listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
    throw_errno("bind", host + ":" + std::to_string(port));
  }
  if (::listen(tcp_listener_.get(), 64) < 0) throw_errno("listen", host + ":" + std::to_string(port));
}

}  // namespace airlock::server

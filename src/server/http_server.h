#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/unique_fd.h"

namespace boost::asio {
class io_context;
}

namespace airlock::server {

// The body of a request the server did not read into memory (a route that
// streams: HttpServer::stream_bodies), read in pieces by its handler.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // Its Content-Length; none for a chunked body.
  virtual std::optional<uint64_t> size() const = 0;
  // Up to `max` more bytes into `buffer`; 0 at its end. Each read has the
  // server's body deadline: a client that stops sending is cut off
  // (Error(io)).
  virtual size_t read(char* buffer, size_t max) = 0;
};

// A WebSocket (RFC 6455) a handler took from an upgraded request. The
// handler runs it on the connection's thread; send and close may be called
// from any thread.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues a message, binary or text. Blocks while a megabyte is queued
  // (a reader that stops slows its sender down); dropped once closed.
  virtual void send(std::string data, bool binary) = 0;
  // Closes it normally, with `reason`, once what was queued is sent.
  virtual void close(const std::string& reason) = 0;
  // Hands each message that arrives to `on_message` on this thread, until
  // the socket closes (either side, or a peer that stops answering pings).
  virtual void run(const std::function<void(const std::string& data, bool binary)>& on_message) = 0;
};

// A request that asked to become a WebSocket. The handler either takes it
// (accept) or answers with its writer, which refuses it.
class WebSocketUpgrade {
 public:
  virtual ~WebSocketUpgrade() = default;
  // Completes the handshake; Error(io) if it fails.
  virtual WebSocket& accept() = 0;
};

struct HttpRequest {
  std::string method;
  std::string target;                   // path, without the query
  std::string query;                    // after the '?', as sent (query_parameter decodes it)
  std::string body;                     // empty when body_stream is set
  BodyStream* body_stream = nullptr;    // a streamed route's body, to be read by the handler
  WebSocketUpgrade* upgrade = nullptr;  // set when the request asks for a WebSocket
  std::string accept;
  std::string authorization;
  int client_fd = -1;  // to notice a client that hangs up mid-request
  // The daemon's operator: any peer of the Unix socket (its uid or root), or
  // a TCP client with the operator token. Pool management is theirs alone.
  bool from_operator = false;
};

// How a handler answers: either one whole response, or a chunked stream.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // The body is taken by value: a large one is moved in, never copied.
  virtual void send(int status, const std::string& content_type, std::string body) = 0;
  virtual void begin_stream(int status, const std::string& content_type) = 0;
  // False once the client has gone away: the handler should stop its work.
  virtual bool write_chunk(const std::string& data) = 0;
  virtual void end_stream() = 0;
  // Ends a stream that failed part way: the connection is closed without
  // the last chunk, so the client sees the body as cut off, not complete.
  virtual void abort_stream() = 0;
};

// The value of `name` in a query ("a=1&path=%2Fx"), percent-decoded, or
// nullopt if absent. Throws Error(invalid_argument) for a malformed escape.
std::optional<std::string> query_parameter(const std::string& query, const std::string& name);

using HttpHandler = std::function<void(const HttpRequest&, ResponseWriter&)>;

// What a connection may cost the server before it has earned more: every
// read and write has a deadline (a peer that stops sending or reading is
// cut off), and connections beyond a cap are refused at once with 503.
struct ConnectionLimits {
  int max_unix = 64;                                           // concurrent connections on the Unix socket
  int max_tcp = 32;                                            // concurrent connections on the TCP listener
  std::chrono::milliseconds head = std::chrono::seconds(10);   // to send a request's head
  std::chrono::milliseconds body = std::chrono::seconds(30);   // to send its body
  std::chrono::milliseconds idle = std::chrono::seconds(60);   // between requests on a kept-alive connection
  std::chrono::milliseconds write = std::chrono::seconds(10);  // for each response write to complete
};

// HTTP/1.1 on a Unix socket (Boost.Beast), a thread per connection up to
// the caps of ConnectionLimits. The socket is created mode 0600 and each
// connection's peer credentials are checked: only this process's uid (or
// root) is served. Optionally also TCP on loopback, where a bearer token
// takes the place of peer credentials; it is checked on the request's head,
// before any body is read.
class HttpServer {
 public:
  static constexpr size_t kMaxBodyBytes = 2 << 20;

  HttpServer(std::string socket_path, HttpHandler handler, ConnectionLimits limits = {});
  ~HttpServer();

  // Requests for which `streams` says true get their body as a BodyStream
  // of at most `max_bytes` (Content-Length or chunked; 413
  // past it) instead of a string of at most kMaxBodyBytes.
  void stream_bodies(std::function<bool(const std::string& method, const std::string& target)> streams,
                     uint64_t max_bytes);

  // Also serves TCP on loopback; every request there must carry
  // `Authorization: Bearer <token>` (401 otherwise).
  // `operator_token` (optional, different): a TCP client showing it is the operator.
  void listen_tcp(const std::string& host, int port, std::string token, std::string operator_token = {});
  // Returns after stop() once every connection has finished. Once `grace`
  // has passed since stop(), `on_grace_over` is called (to cancel the runs
  // still going, whose results are then written); connections still open
  // 10 s after that are cut off.
  void serve(std::chrono::milliseconds grace = std::chrono::seconds(30),
             const std::function<void()>& on_grace_over = nullptr);
  void stop();  // stops accepting; idle connections close, in-flight requests finish

  // Cuts the connection on `fd` off if it is still busy `within` from now
  // (one read or write); disarm() ends the wait. For the connection's own thread.
  void arm_deadline(int fd, std::chrono::milliseconds within);
  void disarm_deadline(int fd);
  const ConnectionLimits& limits() const { return limits_; }

 private:
  using Clock = std::chrono::steady_clock;
  void handle_connection(int fd, bool tcp);
  template <typename Stream>
  void serve_stream(Stream& socket, boost::asio::io_context& context, int fd, bool needs_token);
  void accept_one(int listener, bool tcp);
  void enforce_deadlines();

  std::string socket_path_;
  HttpHandler handler_;
  std::function<bool(const std::string&, const std::string&)> streams_body_;
  uint64_t max_streamed_bytes_ = 0;
  UniqueFd listener_;
  UniqueFd tcp_listener_;
  std::string token_;
  std::string operator_token_;
  ConnectionLimits limits_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  int unix_connections_ = 0;
  int tcp_connections_ = 0;
  struct Connection {
    Clock::time_point deadline = Clock::time_point::max();  // when it is cut off (max: never)
    bool busy = false;                                      // a request has arrived and is being served
  };
  // Every open connection. On stop() the idle ones are shut for reading, so
  // keep-alive readers end; busy ones finish their request (drain).
  std::map<int, Connection> open_fds_;
  void set_busy(int fd, bool busy);
};

}  // namespace airlock::server

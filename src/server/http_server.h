#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "common/unique_fd.h"

namespace airlock::server {

struct HttpRequest {
  std::string method;
  std::string target;  // path, without the query
  std::string body;
  std::string accept;
  std::string authorization;
  int client_fd = -1;  // to notice a client that hangs up mid-request
};

// How a handler answers: either one whole response, or a chunked stream.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual void send(int status, const std::string& content_type, const std::string& body) = 0;
  virtual void begin_stream(int status, const std::string& content_type) = 0;
  // False once the client has gone away: the handler should stop its work.
  virtual bool write_chunk(const std::string& data) = 0;
  virtual void end_stream() = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, ResponseWriter&)>;

// HTTP/1.1 on a Unix socket (Boost.Beast), a thread per connection. The
// socket is created mode 0600 and each connection's peer credentials are
// checked: only this process's uid (or root) is served. Optionally also TCP
// on loopback, where a bearer token takes the place of peer credentials.
class HttpServer {
 public:
  static constexpr size_t kMaxBodyBytes = 2 << 20;

  HttpServer(std::string socket_path, HttpHandler handler);
  ~HttpServer();

  // Also serves TCP on loopback; every request there must carry
  // `Authorization: Bearer <token>` (401 otherwise).
  void listen_tcp(const std::string& host, int port, std::string token);
  void serve();  // returns after stop() once every connection has finished
  void stop();   // stops accepting; in-flight requests finish

 private:
  void handle_connection(int fd, bool tcp);
  template <typename Stream>
  void serve_stream(Stream& socket, bool needs_token);

  std::string socket_path_;
  HttpHandler handler_;
  UniqueFd listener_;
  UniqueFd tcp_listener_;
  std::string token_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  int connections_ = 0;
  std::set<int> open_fds_;  // shut for reading on stop(), so idle keep-alive readers end
};

}  // namespace airlock::server

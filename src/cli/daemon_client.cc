#include "cli/daemon_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <cctype>
#include <nlohmann/json.hpp>

#include "cli/verbs.h"
#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"
#include "engine/paths.h"
#include "engine/request_json.h"

namespace airlock::cli {

namespace http = boost::beast::http;
using nlohmann::json;

namespace {

UniqueFd connect_to(const std::string& socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) return {};
  std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return {};
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) return {};
  return fd;
}

Error error_of(unsigned status, const std::string& body_text) {
  json error = json::parse(body_text, nullptr, false);
  std::string message =
      error.is_object() && error.contains("error") ? error["error"].value("message", body_text) : body_text;
  const ErrorCode code = status == 400   ? ErrorCode::invalid_argument
                         : status == 404 ? ErrorCode::not_found
                         : status == 409 ? ErrorCode::conflict
                         : status == 429 ? ErrorCode::overloaded
                         : status == 403 ? ErrorCode::permission_denied
                         : status == 413 ? ErrorCode::too_large
                         : status == 507 ? ErrorCode::no_space
                                         : ErrorCode::unavailable;
  return Error(code, "airlockd: " + message + " (HTTP " + std::to_string(status) + ")");
}

// False once the daemon closed its end (it answered early); never SIGPIPE.
bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

std::string no_daemon_message(const std::string& socket_path) {
  return "no airlockd answers on " + socket_path +
         "; start one with `build/bin/airlockd &` (or say where it listens with --socket or $AIRLOCK_SOCKET)";
}

}  // namespace

json call_daemon(const std::string& socket_path, const std::string& method, const std::string& target,
                 const std::string& body) {
  const std::string answer = exchange_with_daemon(socket_path, method, target, body);
  json document = json::parse(answer, nullptr, false);
  if (document.is_discarded()) throw Error(ErrorCode::protocol, "airlockd answered with something not JSON");
  return document;
}

std::string percent_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string exchange_with_daemon(const std::string& socket_path, const std::string& method,
                                 const std::string& target, const std::string& body) {
  std::string answer;
  transfer_with_daemon(socket_path, method, target, RequestBody{body, -1, 0, {}},
                       [&](std::string_view data) { answer.append(data); });
  return answer;
}

void transfer_with_daemon(const std::string& socket_path, const std::string& method,
                          const std::string& target, const RequestBody& body,
                          const std::function<void(std::string_view)>& on_body) {
  UniqueFd connection = connect_to(socket_path);
  if (!connection) throw Error(ErrorCode::unavailable, no_daemon_message(socket_path));
  const uint64_t size = body.fd >= 0 ? body.fd_size : body.text.size();
  write_all(connection.get(),
            method + " " + target +
                " HTTP/1.1\r\nHost: airlockd\r\nContent-Type: application/json\r\n"
                "Connection: close\r\n" +
                (body.produce ? std::string("Transfer-Encoding: chunked\r\n\r\n")
                              : "Content-Length: " + std::to_string(size) + "\r\n\r\n" + body.text));
  if (body.produce) {
    // A daemon that answers early (a refusal) closes its end: the writer
    // says so, the producer stops, and its answer is read below.
    bool refused = false;
    auto send_chunk = [&](std::string_view data) {
      if (refused) return false;
      if (data.empty()) return true;  // an empty chunk would end the body
      char size_line[32];
      const int length = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
      refused = !send_all(connection.get(), std::string_view(size_line, static_cast<size_t>(length))) ||
                !send_all(connection.get(), data) || !send_all(connection.get(), "\r\n");
      return !refused;
    };
    body.produce(send_chunk);
    if (!refused) send_all(connection.get(), "0\r\n\r\n");
  }
  if (body.fd >= 0) {
    // Piece by piece: a file of any size costs a megabyte here. A daemon
    // that answers early (a refusal) closes its end: stop, read its answer.
    std::string piece(1 << 20, '\0');
    for (uint64_t sent = 0; sent < size;) {
      const ssize_t n =
          ::read(body.fd, piece.data(), static_cast<size_t>(std::min<uint64_t>(piece.size(), size - sent)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("read", "the file to send");
      if (n == 0) throw Error(ErrorCode::io, "the file to send got shorter while it was sent");
      if (!send_all(connection.get(), std::string_view(piece.data(), static_cast<size_t>(n)))) break;
      sent += static_cast<uint64_t>(n);
    }
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  parser.eager(true);
  // A streamed (chunked) body goes to on_body as it comes; any other is
  // kept whole (an answer of a few bytes, or an error).
  std::function<size_t(uint64_t, boost::beast::string_view, boost::system::error_code&)> on_chunk =
      [&](uint64_t, boost::beast::string_view data, boost::system::error_code&) -> size_t {
    if (parser.get().result_int() >= 300) {
      parser.get().body().append(data.data(), data.size());
    } else {
      on_body(std::string_view(data.data(), data.size()));
    }
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  std::string buffer;
  char chunk[65536];
  while (!parser.is_done()) {
    auto n = read_some(connection.get(), chunk, sizeof chunk);
    if (!n) continue;
    if (*n == 0) break;
    buffer.append(chunk, *n);
    boost::system::error_code error;
    const size_t used = parser.put(boost::asio::buffer(buffer), error);
    if (error == http::error::need_more) error = {};
    if (error) throw Error(ErrorCode::protocol, "airlockd sent a malformed response: " + error.message());
    buffer.erase(0, used);
    if (!parser.chunked() && parser.get().body().size() > (256 << 20)) {
      throw Error(ErrorCode::protocol, "airlockd sent an answer larger than 256 MiB in one piece");
    }
  }
  if (!parser.is_done())
    throw Error(ErrorCode::unavailable, "airlockd closed the connection before it answered whole");
  const unsigned status = parser.get().result_int();
  if (status >= 300) throw error_of(status, parser.get().body());
  if (!parser.chunked()) on_body(parser.get().body());
}

std::optional<engine::RunResult> run_via_daemon(const std::string& socket_path,
                                                const engine::RunRequest& request, engine::OutputSink& sink,
                                                const engine::CancelToken& cancel) {
  return stream_via_daemon(socket_path, "/v1/run", engine::to_json(request).dump(), sink, cancel);
}

namespace {

// Sends a request whose answer is a stream of output events (then perhaps
// a result) and hands the output to `sink`. False when no daemon answers.
bool stream_events(const std::string& socket_path, const std::string& method, const std::string& target,
                   const std::string& body, engine::OutputSink& sink, const engine::CancelToken& cancel,
                   std::optional<engine::RunResult>& result) {
  UniqueFd connection = connect_to(socket_path);
  if (!connection) return false;

  std::string head = method + " " + target +
                     " HTTP/1.1\r\nHost: airlockd\r\nContent-Type: application/json\r\n"
                     "Accept: application/x-ndjson\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  write_all(connection.get(), head + body);

  std::string error_body;
  std::string pending;  // an NDJSON line not yet complete
  auto on_line = [&](const std::string& line) {
    json event = json::parse(line, nullptr, false);
    if (event.is_discarded() || !event.is_object())
      throw Error(ErrorCode::protocol, "airlockd sent a bad event");
    const std::string type = event.value("type", "");
    if (type == "result") {
      result = engine::result_from_json(event.at("result"));
      return;
    }
    if (type == "dropped") {
      sink.on_stderr("[airlock: older output was dropped]\n");
      return;
    }
    std::string data = event.value("data", "");
    if (event.value("encoding", "") == "base64") data = engine::base64_decode(data);
    type == "stdout" ? sink.on_stdout(data) : sink.on_stderr(data);
  };
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  parser.eager(true);
  std::function<size_t(uint64_t, boost::beast::string_view, boost::system::error_code&)> on_chunk =
      [&](uint64_t, boost::beast::string_view chunk_data, boost::system::error_code&) -> size_t {
    std::string_view data(chunk_data.data(), chunk_data.size());
    if (parser.get().result_int() != 200) {
      error_body.append(data);
      return data.size();
    }
    pending.append(data);
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      on_line(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
    return data.size();
  };
  parser.on_chunk_body(on_chunk);

  std::string buffer;
  for (;;) {
    pollfd fds[2] = {{connection.get(), POLLIN, 0}, {cancel.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) throw_errno("poll");
    if (fds[1].revents) {
      // Closing the connection is how a client cancels: the daemon stops the run.
      connection.reset();
      engine::RunResult cancelled;
      cancelled.status = engine::RunStatus::killed;
      cancelled.signal = 9;
      cancelled.error = "cancelled";
      result = cancelled;
      return true;
    }
    if (!fds[0].revents) continue;
    char chunk[65536];
    auto n = read_some(connection.get(), chunk, sizeof chunk);
    if (!n) continue;
    if (*n == 0) break;
    buffer.append(chunk, *n);
    boost::system::error_code error;
    size_t used = parser.put(boost::asio::buffer(buffer), error);
    if (error == http::error::need_more) error = {};
    if (error) throw Error(ErrorCode::protocol, "airlockd sent a malformed response: " + error.message());
    buffer.erase(0, used);
    if (parser.is_done()) break;
  }
  if (!parser.is_header_done()) throw Error(ErrorCode::unavailable, "airlockd closed the connection");
  const unsigned status = parser.get().result_int();
  if (status != 200) throw error_of(status, error_body.empty() ? parser.get().body() : error_body);
  return true;
}

}  // namespace

std::optional<engine::RunResult> stream_via_daemon(const std::string& socket_path, const std::string& target,
                                                   const std::string& body, engine::OutputSink& sink,
                                                   const engine::CancelToken& cancel) {
  std::optional<engine::RunResult> result;
  if (!stream_events(socket_path, "POST", target, body, sink, cancel, result)) return std::nullopt;
  if (!result) throw Error(ErrorCode::protocol, "airlockd ended the stream without a result");
  return result;
}

std::optional<engine::RunResult> follow_via_daemon(const std::string& socket_path, const std::string& target,
                                                   engine::OutputSink& sink,
                                                   const engine::CancelToken& cancel) {
  std::optional<engine::RunResult> result;
  if (!stream_events(socket_path, "GET", target, "", sink, cancel, result)) {
    call_daemon(socket_path, "GET", "/v1/health");  // throws, saying how to start airlockd
    throw Error(ErrorCode::unavailable, "airlockd did not answer");
  }
  return result;
}

std::string daemon_socket_path(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* path = std::getenv("AIRLOCK_SOCKET"); path && *path) return path;
  return engine::default_runtime_dir() + "/airlockd.sock";
}

void add_socket_option(CLI::App& verb, std::string& socket) {
  verb.add_option("--socket", socket,
                  "airlockd socket to use (default $AIRLOCK_SOCKET, else <runtime dir>/airlockd.sock)");
}

}  // namespace airlock::cli

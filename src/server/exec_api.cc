// The endpoints of one exec of a sandbox (docs/api.yaml): its state, its
// output kept so far (or followed), a signal, more stdin.
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "engine/request_json.h"
#include "engine/sandbox_json.h"
#include "server/api.h"
#include "server/event_stream.h"
#include "server/responses.h"

namespace airlock::server {

using nlohmann::json;

namespace {

bool flag(const HttpRequest& request, const char* name) {
  auto value = query_parameter(request.query, name);
  if (!value) return false;
  if (*value != "0" && *value != "1") {
    throw Error(ErrorCode::invalid_argument, std::string("query parameter '") + name + "' must be 0 or 1");
  }
  return *value == "1";
}

}  // namespace

void Api::handle_exec(const std::string& id, const std::string& exec_path, const HttpRequest& request,
                      ResponseWriter& writer) {
  const size_t slash = exec_path.find('/');
  const std::string exec_id = exec_path.substr(0, slash);
  const std::string verb = slash == std::string::npos ? "" : exec_path.substr(slash + 1);
  if (verb.empty() && request.method == "GET") {
    return writer.send(200, "application/json",
                       dump(engine::to_json(sandboxes_->exec_info(id, exec_id, true))));
  }
  if (verb == "logs" && request.method == "GET") return stream_exec_logs(id, exec_id, request, writer);
  if (verb == "terminal" && request.method == "GET") return attach_terminal(id, exec_id, request, writer);
  if (verb == "signal" && request.method == "POST") {
    const json value = only_field(request.body, "signal", "a signal");
    sandboxes_->signal_exec(id, exec_id, engine::signal_number(value));
    return writer.send(200, "application/json",
                       dump(engine::to_json(sandboxes_->exec_info(id, exec_id, false))));
  }
  if (verb == "resize" && request.method == "POST") {
    const json body = engine::parse_json_object(request.body);
    for (const auto& [key, value] : body.items()) {
      if (key != "rows" && key != "cols") {
        throw Error(ErrorCode::invalid_argument,
                    "unknown field '" + key + "' (a resize takes rows and cols)");
      }
    }
    if (!body.contains("rows") || !body.contains("cols")) {
      throw Error(ErrorCode::invalid_argument, "a resize needs rows and cols");
    }
    sandboxes_->resize_exec(id, exec_id, engine::integer_field(body["rows"], "rows"),
                            engine::integer_field(body["cols"], "cols"));
    return writer.send(200, "application/json",
                       dump(engine::to_json(sandboxes_->exec_info(id, exec_id, false))));
  }
  if (verb == "stdin" && request.method == "POST") {
    const bool close = flag(request, "close");
    uint64_t bytes = 0;
    if (request.body_stream) {
      // Piece by piece, as the guest takes it (its stdin window).
      std::string piece(64 * 1024, '\0');
      while (const size_t n = request.body_stream->read(piece.data(), piece.size())) {
        sandboxes_->write_exec_stdin(id, exec_id, std::string_view(piece.data(), n), false);
        bytes += n;
      }
      if (close || bytes == 0) sandboxes_->write_exec_stdin(id, exec_id, {}, close);
    } else {
      sandboxes_->write_exec_stdin(id, exec_id, request.body, close);
      bytes = request.body.size();
    }
    return writer.send(200, "application/json", dump({{"bytes", bytes}, {"closed", close}}));
  }
  send_error(writer, 404, "not_found", "no endpoint " + request.method + " " + request.target, false);
}

void Api::stream_exec_logs(const std::string& id, const std::string& exec_id, const HttpRequest& request,
                           ResponseWriter& writer) {
  const bool follow = flag(request, "follow");
  sandboxes_->exec_info(id, exec_id, false);  // 404 while it is still a status
  engine::CancelToken cancel;
  CancelledOnDrain on_drain(*this, cancel);
  engine::ExecInfo last;
  std::optional<EventStream> stream;
  {
    // A follower that hangs up ends its stream, never the exec.
    HangupWatch hangup(request.client_fd, cancel);
    stream.emplace(writer, cancel);
    NdjsonSink sink(*stream);
    try {
      last = sandboxes_->read_exec_output(
          id, exec_id, follow, sink,
          [&](uint64_t chunks) {
            stream->push(dump({{"type", "dropped"}, {"chunks", chunks}}) + "\n");
          },
          &cancel);
    } catch (const Error& e) {
      // Gone meanwhile (its sandbox destroyed): the stream just ends.
      last.running = true;
    }
  }
  std::string tail;
  if (!last.running && last.result) {
    last.result->stdout_data.clear();
    last.result->stderr_data.clear();
    tail = R"({"type":"result","result":)" + result_body(std::move(*last.result)) + "}\n";
  }
  stream->finish(std::move(tail));
}

namespace {

// A terminal's output as binary messages.
class TerminalSink final : public engine::OutputSink {
 public:
  explicit TerminalSink(WebSocket& socket) : socket_(socket) {}
  void on_stdout(std::string_view bytes) override { socket_.send(std::string(bytes), true); }
  void on_stderr(std::string_view bytes) override { socket_.send(std::string(bytes), true); }

 private:
  WebSocket& socket_;
};

}  // namespace

void Api::attach_terminal(const std::string& id, const std::string& exec_id, const HttpRequest& request,
                          ResponseWriter& writer) {
  // Refusals are still HTTP answers: the socket is taken only for a terminal there is.
  if (!sandboxes_->exec_info(id, exec_id, false).tty) {
    throw Error(ErrorCode::conflict, "exec " + exec_id + " has no terminal; start it with \"tty\": true");
  }
  sandboxes_->expect_live(id);
  if (!request.upgrade) {
    return send_error(writer, 426, "invalid_argument",
                      "this endpoint is a WebSocket: send Connection: Upgrade and Upgrade: websocket", false);
  }
  WebSocket& socket = request.upgrade->accept();
  engine::CancelToken detached;
  CancelledOnDrain on_drain(*this, detached);
  std::thread follower([&] {
    TerminalSink sink(socket);
    std::string farewell = "the exec ended";
    try {
      engine::ExecInfo last = sandboxes_->read_exec_output(
          id, exec_id, /*follow=*/true, sink,
          [&](uint64_t chunks) {
            socket.send(dump({{"type", "dropped"}, {"chunks", chunks}}), false);
          },
          &detached);
      if (!last.running && last.result) {
        last.result->stdout_data.clear();
        last.result->stderr_data.clear();
        socket.send(R"({"type":"exit","result":)" + result_body(std::move(*last.result)) + "}", false);
      }
    } catch (const Error& e) {
      farewell = e.what();  // its sandbox went away meanwhile
    }
    if (detached.cancelled()) farewell = "airlockd is shutting down";
    socket.close(farewell);
  });
  auto answer_error = [&](const std::string& message) {
    socket.send(dump({{"type", "error"}, {"message", message}}), false);
  };
  socket.run([&](const std::string& message, bool binary) {
    try {
      if (binary) return sandboxes_->write_exec_stdin(id, exec_id, message, false);
      const json command = engine::parse_json_object(message);
      const std::string type = command.value("type", "");
      if (type == "resize") {
        if (!command.contains("rows") || !command.contains("cols"))
          return answer_error("a resize needs rows and cols");
        return sandboxes_->resize_exec(id, exec_id, engine::integer_field(command["rows"], "rows"),
                                       engine::integer_field(command["cols"], "cols"));
      }
      if (type == "signal" && command.contains("signal")) {
        return sandboxes_->signal_exec(id, exec_id, engine::signal_number(command["signal"]));
      }
      if (type == "stdin_close") return sandboxes_->write_exec_stdin(id, exec_id, {}, true);
      answer_error("unknown message '" + message.substr(0, 200) +
                   "': send keys as binary messages, or resize, signal or stdin_close as JSON text");
    } catch (const Error& e) {
      answer_error(e.what());
    }
  });
  // Detached (or ended): the exec goes on; only this follower stops.
  detached.cancel();
  follower.join();
}

}  // namespace airlock::server

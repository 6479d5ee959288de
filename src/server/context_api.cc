// The code-context endpoints of docs/api.yaml:
// /v1/sandboxes/{id}/contexts[/{name}[/run|/interrupt|/restart]].
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/code_context.h"
#include "engine/request_json.h"
#include "server/api.h"
#include "server/event_stream.h"
#include "server/responses.h"

namespace airlock::server {

using nlohmann::json;

namespace {

void send_json(ResponseWriter& writer, int status, const json& document) {
  writer.send(status, "application/json", dump(document));
}

// A cell's events as NDJSON lines, as they come.
class NdjsonEvents final : public engine::CodeEventSink {
 public:
  explicit NdjsonEvents(EventStream& stream) : stream_(stream) {}
  void on_event(const json& event) override { stream_.push(dump(event) + "\n"); }

 private:
  EventStream& stream_;
};

// The stream's last line: how the cell ended (its output came as events).
json done_line(const engine::CodeResult& result) {
  json line = engine::to_json(result);
  for (const char* streamed : {"stdout", "stderr", "result", "displays", "error"}) line.erase(streamed);
  line["type"] = "done";
  return line;
}

}  // namespace

void Api::handle_contexts(const std::string& id, const std::string& path, const HttpRequest& request,
                          ResponseWriter& writer) {
  if (path.empty()) {
    if (request.method == "GET") {
      json list = json::array();
      for (const auto& info : sandboxes_->contexts(id)) list.push_back(engine::to_json(info));
      return send_json(writer, 200, {{"contexts", list}});
    }
    if (request.method != "POST")
      return send_error(writer, 405, "invalid_argument", "use GET or POST", false);
    const json body = request.body.empty() ? json::object() : engine::parse_json_object(request.body);
    return send_json(writer, 201,
                     engine::to_json(sandboxes_->open_context(id, engine::context_request_from_json(body))));
  }
  const size_t slash = path.find('/');
  const std::string name = path.substr(0, slash);
  const std::string verb = slash == std::string::npos ? "" : path.substr(slash + 1);
  engine::validate_context_name(name);
  if (verb.empty() && request.method == "GET")
    return send_json(writer, 200, engine::to_json(sandboxes_->context(id, name)));
  if (verb.empty() && request.method == "DELETE") {
    return send_json(writer, 200, engine::to_json(sandboxes_->control_context(id, name, "stop")));
  }
  if ((verb == "interrupt" || verb == "restart") && request.method == "POST") {
    return send_json(writer, 200, engine::to_json(sandboxes_->control_context(id, name, verb)));
  }
  if (verb == "run" && request.method == "POST") return run_cell(id, name, request, writer);
  send_error(writer, 404, "not_found", "no endpoint " + request.method + " " + request.target, false);
}

void Api::run_cell(const std::string& id, const std::string& name, const HttpRequest& http_request,
                   ResponseWriter& writer) {
  const engine::CodeRequest request =
      engine::code_request_from_json(engine::parse_json_object(http_request.body));
  const bool streaming = http_request.accept.find("application/x-ndjson") != std::string::npos;
  auto output =
      output_budget_.reserve(2 * (request.stdout_limit + request.stderr_limit + engine::kMaxCellEventBytes) +
                             (streaming ? EventStream::kDefaultMaxBytes : 0));
  if (!output)
    return refuse_over_budget(writer, "a cell's output", "output", output_budget_,
                              "stdout_limit/stderr_limit");
  engine::CancelToken cancel;
  CancelledOnDrain on_drain(*this, cancel);
  // A client that hangs up interrupts its cell; the context stays.
  HangupWatch hangup(http_request.client_fd, cancel);
  if (!streaming)
    return send_json(writer, 200, engine::to_json(sandboxes_->run_code(id, name, request, nullptr, &cancel)));
  // Checked before the stream begins, so that a missing, busy or dead context is still a status.
  const engine::ContextInfo info = sandboxes_->context(id, name);
  if (info.state != "idle") {
    throw Error(ErrorCode::conflict, "code context '" + name + "' is " + info.state +
                                         (info.reason.empty() ? "" : " (" + info.reason + ")"));
  }
  EventStream stream(writer, cancel);
  NdjsonEvents events(stream);
  json last;
  try {
    last = done_line(sandboxes_->run_code(id, name, request, &events, &cancel));
  } catch (const Error& e) {
    last = {{"type", "done"}, {"status", "failed"}, {"failure", error_json(e)}};
  }
  stream.finish(dump(last) + "\n");
}

}  // namespace airlock::server

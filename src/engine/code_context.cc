#include "engine/code_context.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>

#include "common/error.h"
#include "engine/request_json.h"

namespace airlock::engine {

extern const char* const kPythonContextSource;
extern const char* const kJavascriptContextSource;

using nlohmann::json;
using protocol::FrameType;

namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(90);  // a start waits for its interpreter
constexpr auto kPoll = std::chrono::milliseconds(50);
// Past a cell's own timeout, the agent interrupts it and then kills it
// (CodeContexts::kInterruptGrace); the host waits that long and some more.
constexpr auto kCellGrace = std::chrono::seconds(8);
constexpr size_t kMaxEventLine = 64 << 20;

// The frames of one stream, queued by the mux's thread for the caller.
class FrameQueue : public StreamHandler {
 public:
  void on_frame(const protocol::Frame& frame) override {
    std::lock_guard lock(mutex_);
    frames_.push_back(frame);
    changed_.notify_all();
  }
  void on_broken(const std::string& reason) override {
    std::lock_guard lock(mutex_);
    broken_ = reason;
    changed_.notify_all();
  }
  // The next frame, or nullopt at `until`; Error(vm) once nothing more can come.
  std::optional<protocol::Frame> next(SteadyClock::time_point until) {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, until, [&] { return !frames_.empty() || broken_; });
    if (!frames_.empty()) {
      protocol::Frame frame = std::move(frames_.front());
      frames_.pop_front();
      return frame;
    }
    if (broken_) throw Error(ErrorCode::vm, "the sandbox's guest stopped: " + *broken_);
    return std::nullopt;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<protocol::Frame> frames_;
  std::optional<std::string> broken_;
};

// A stream of its own for one request, closed when done.
struct OpenStream {
  explicit OpenStream(GuestMux& guest)
      : mux(guest), queue(std::make_shared<FrameQueue>()), id(guest.open_stream(queue)) {}
  ~OpenStream() { mux.close_stream(id); }
  GuestMux& mux;
  std::shared_ptr<FrameQueue> queue;
  uint32_t id;
};

[[noreturn]] void refused(const protocol::Frame& frame) {
  const std::string message = protocol::ErrorReport::parse(frame.payload).message;
  throw Error(message.rfind("no code context", 0) == 0 ? ErrorCode::not_found : ErrorCode::conflict, message);
}

std::vector<ContextInfo> answered_list(OpenStream& stream, const std::string& doing) {
  const auto deadline = SteadyClock::now() + kAnswerTimeout;
  auto frame = stream.queue->next(deadline);
  if (!frame) throw Error(ErrorCode::vm, "the guest did not " + doing + " in time");
  if (frame->type == FrameType::error) refused(*frame);
  if (frame->type != FrameType::context_info) {
    throw Error(ErrorCode::vm, "the guest answered " + std::string(protocol::to_string(frame->type)) +
                                   " when asked to " + doing);
  }
  std::vector<ContextInfo> list;
  for (const auto& info : protocol::ContextList::parse(frame->payload).contexts)
    list.push_back(context_info(info));
  return list;
}

std::string random_name() {
  std::random_device device;
  char name[16];
  std::snprintf(name, sizeof name, "ctx-%08x", static_cast<unsigned>(device()));
  return name;
}

// Output as text: UTF-8 kept whole across pieces (an incomplete sequence at
// the end waits for the next piece); anything else is replaced when dumped.
class Utf8Text {
 public:
  std::string take(std::string_view bytes) {
    pending_.append(bytes);
    size_t cut = pending_.size();
    // Back over at most 3 continuation bytes to a lead byte whose sequence is incomplete.
    for (size_t back = 1; back <= 4 && back <= pending_.size(); ++back) {
      const auto byte = static_cast<unsigned char>(pending_[pending_.size() - back]);
      if ((byte & 0xC0) == 0x80) continue;  // a continuation byte
      const size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
      if (length > back) cut = pending_.size() - back;
      break;
    }
    std::string complete = pending_.substr(0, cut);
    pending_.erase(0, cut);
    return complete;
  }
  std::string rest() { return std::exchange(pending_, {}); }

 private:
  std::string pending_;
};

// One of the interpreter's events, checked: it comes from the guest.
std::optional<json> checked_event(const std::string& line) {
  json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!event.is_object() || !event.contains("type") || !event["type"].is_string()) return std::nullopt;
  const std::string type = event["type"];
  if (type == "result" || type == "display") {
    if (!event.contains("data") || !event["data"].is_object()) return std::nullopt;
    json data = json::object();
    for (auto it = event["data"].begin(); it != event["data"].end(); ++it) {
      // Every form is text but JSON's, which is the value itself.
      if (it.value().is_string() || it.key() == "application/json") data[it.key()] = it.value();
    }
    if (!data.contains("text/plain")) data["text/plain"] = "";
    return json{{"type", type}, {"data", data}};
  }
  if (type == "error") {
    json traceback = json::array();
    if (event.contains("traceback") && event["traceback"].is_array()) {
      for (const auto& line_text : event["traceback"]) {
        if (line_text.is_string()) traceback.push_back(line_text);
      }
    }
    auto text = [&](const char* key) {
      return event.contains(key) && event[key].is_string() ? event[key].get<std::string>() : std::string();
    };
    return json{
        {"type", "error"}, {"name", text("name")}, {"value", text("value")}, {"traceback", traceback}};
  }
  return std::nullopt;
}

}  // namespace

void validate_context_name(const std::string& name) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  bool valid = !name.empty() && name.size() <= 64 && word(name[0]);
  for (char c : name) valid = valid && (word(c) || c == '_' || c == '.' || c == '-');
  if (!valid) {
    throw Error(ErrorCode::invalid_argument,
                "a context's name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or "
                "digit: '" +
                    name.substr(0, 80) + "'");
  }
}

std::string context_language(const std::string& name) {
  if (name == "python" || name == "py" || name == "python3") return "python";
  if (name == "javascript" || name == "js" || name == "node") return "javascript";
  throw Error(ErrorCode::invalid_argument,
              "a code context runs python or javascript, not '" + name.substr(0, 80) + "'");
}

ContextRequest context_request_from_json(const json& document) {
  ContextRequest request;
  for (const auto& [key, value] : document.items()) {
    if (key != "name" && key != "language") {
      throw Error(ErrorCode::invalid_argument,
                  "unknown field '" + key + "' (a context takes name, language)");
    }
    if (!value.is_string()) throw Error(ErrorCode::invalid_argument, "field '" + key + "' must be a string");
  }
  if (document.contains("name")) {
    request.name = document["name"].get<std::string>();
    validate_context_name(request.name);
  }
  if (document.contains("language"))
    request.language = context_language(document["language"].get<std::string>());
  return request;
}

CodeRequest code_request_from_json(const json& document) {
  CodeRequest request;
  bool has_code = false;
  for (const auto& [key, value] : document.items()) {
    if (key == "code") {
      if (!value.is_string()) throw Error(ErrorCode::invalid_argument, "field 'code' must be a string");
      request.code = value.get<std::string>();
      has_code = true;
    } else if (key == "timeout_s") {
      request.timeout_s = integer_field(value, key);
    } else if (key == "stdout_limit" || key == "stderr_limit") {
      const int limit = integer_field(value, key);
      if (limit < 0 || limit > (64 << 20)) {
        throw Error(ErrorCode::invalid_argument, "field '" + key + "' must be 0 to 67108864 bytes");
      }
      (key == "stdout_limit" ? request.stdout_limit : request.stderr_limit) = static_cast<uint64_t>(limit);
    } else {
      throw Error(ErrorCode::invalid_argument,
                  "unknown field '" + key + "' (a cell takes code, timeout_s, stdout_limit, stderr_limit)");
    }
  }
  if (!has_code) throw Error(ErrorCode::invalid_argument, "a cell needs its code");
  if (request.code.size() > protocol::kMaxCellCode) {
    throw Error(ErrorCode::invalid_argument, "a cell's code is at most " +
                                                 std::to_string(protocol::kMaxCellCode) +
                                                 " bytes; upload a "
                                                 "file and import or require it instead");
  }
  if (request.timeout_s < 0 || request.timeout_s > 24 * 3600) {
    throw Error(ErrorCode::invalid_argument, "field 'timeout_s' must be 0 (none) to 86400");
  }
  return request;
}

ContextInfo context_info(const protocol::ContextInfo& guest) {
  return ContextInfo{guest.context, guest.language,      guest.state, guest.execution_count,
                     guest.pid,     guest.started_at_ms, guest.reason};
}

json to_json(const ContextInfo& info) {
  json document = {{"name", info.name},
                   {"language", info.language},
                   {"state", info.state},
                   {"execution_count", info.execution_count},
                   {"started_at_ms", info.started_at_ms}};
  if (info.pid > 0) document["pid"] = info.pid;
  if (!info.reason.empty()) document["reason"] = info.reason;
  return document;
}

json to_json(const CodeResult& result) {
  json document = {{"context", result.context},
                   {"status", result.status},
                   {"execution_count", result.execution_count},
                   {"duration_ms", result.duration_ms},
                   {"stdout", result.stdout_text},
                   {"stderr", result.stderr_text},
                   {"stdout_truncated", result.stdout_truncated},
                   {"stderr_truncated", result.stderr_truncated},
                   {"events_truncated", result.events_truncated},
                   {"result", result.result ? *result.result : json(nullptr)},
                   {"text", result.result ? json((*result.result)["text/plain"]) : json(nullptr)},
                   {"displays", result.displays},
                   {"error", nullptr}};
  if (result.error) {
    document["error"] = {
        {"name", result.error->name}, {"value", result.error->value}, {"traceback", result.error->traceback}};
  }
  if (!result.reason.empty()) document["reason"] = result.reason;
  return document;
}

std::vector<std::string> context_command(const std::string& language) {
  if (language == "javascript") return {"node", "-e", kJavascriptContextSource};
  // Compiled under a name of its own, so that a traceback can leave out its frames.
  return {"python3", "-c", "import sys; exec(compile(sys.argv[1], '<airlock-context>', 'exec'))",
          kPythonContextSource};
}

ContextInfo ContextClient::start(const std::string& name, const std::string& language, protocol::Exec exec) {
  protocol::ContextStart start;
  start.context = name.empty() ? random_name() : name;
  start.language = language;
  start.exec = std::move(exec);
  OpenStream stream(*mux_);
  mux_->send(FrameType::context_start, stream.id, start.to_payload());
  auto list = answered_list(stream, "start the code context " + start.context);
  if (list.size() != 1)
    throw Error(ErrorCode::vm,
                "the guest answered a start with " + std::to_string(list.size()) + " contexts");
  return list.front();
}

std::vector<ContextInfo> ContextClient::control(const std::string& name, const std::string& action) {
  OpenStream stream(*mux_);
  mux_->send(FrameType::context_control, stream.id, protocol::ContextControl{name, action}.to_payload());
  return answered_list(stream, action + " the code context " + name);
}

CodeResult ContextClient::run(const std::string& name, const CodeRequest& request, CodeEventSink* sink,
                              const CancelToken* cancel, const std::function<bool()>& paused) {
  protocol::ContextRun cell;
  cell.context = name;
  cell.code = request.code;
  cell.timeout_ms = static_cast<uint64_t>(request.timeout_s) * 1000;
  cell.stdout_limit = request.stdout_limit;
  cell.stderr_limit = request.stderr_limit;
  OpenStream stream(*mux_);
  mux_->send(FrameType::context_run, stream.id, cell.to_payload());

  CodeResult result;
  result.context = name;
  Utf8Text text[2];
  std::string events;  // the interpreter's JSON lines, up to a newline
  size_t event_bytes = 0;
  auto emit = [&](json event) {
    const std::string type = event["type"];
    if (type == "stdout" || type == "stderr") {
      (type == "stdout" ? result.stdout_text : result.stderr_text) += event["text"].get<std::string>();
    } else if (type == "result" || type == "display") {
      // The guest's word for its limits is not enough: the host keeps its own.
      event_bytes += event.dump().size();
      if (event_bytes > kMaxCellEventBytes) {
        result.events_truncated = true;
        return;
      }
    }
    if (type == "result") {
      result.result = event["data"];
    } else if (type == "display") {
      result.displays.push_back(event["data"]);
    } else if (type == "error") {
      result.error =
          CodeError{event["name"], event["value"], event["traceback"].get<std::vector<std::string>>()};
    }
    if (sink) sink->on_event(event);
  };
  uint64_t received[2] = {0, 0};
  const uint64_t limits[2] = {request.stdout_limit, request.stderr_limit};
  auto output = [&](int which, std::string_view bytes, bool last) {
    const uint64_t room = limits[which] - std::min(limits[which], received[which]);
    if (bytes.size() > room) (which == 0 ? result.stdout_truncated : result.stderr_truncated) = true;
    bytes = bytes.substr(0, static_cast<size_t>(room));
    received[which] += bytes.size();
    std::string piece = text[which].take(bytes);
    if (last) piece += text[which].rest();
    if (!piece.empty()) emit({{"type", which == 0 ? "stdout" : "stderr"}, {"text", piece}});
  };
  auto deadline = request.timeout_s > 0
                      ? SteadyClock::now() + std::chrono::seconds(request.timeout_s) + kCellGrace
                      : SteadyClock::time_point::max();
  auto looked = SteadyClock::now();
  for (;;) {
    auto frame = stream.queue->next(std::min(deadline, SteadyClock::now() + kPoll));
    const auto now = SteadyClock::now();
    // A paused sandbox's cell stands still, as its guest's clock does.
    if (paused() && deadline != SteadyClock::time_point::max()) deadline += now - looked;
    looked = now;
    if (!frame) {
      if (cancel && cancel->cancelled()) {
        // The caller is gone: the cell is interrupted, the context stays,
        // and nobody waits for the rest.
        mux_->send(FrameType::cancel, stream.id);
        result.status = "interrupted";
        result.reason = "the caller went away";
        return result;
      }
      if (now >= deadline) throw Error(ErrorCode::vm, "the guest did not end the cell in time");
      continue;
    }
    switch (frame->type) {
      case FrameType::error: refused(*frame);
      case FrameType::stdout_data: output(0, frame->payload, false); break;
      case FrameType::stderr_data: output(1, frame->payload, false); break;
      case FrameType::context_event: {
        events += frame->payload;
        size_t newline;
        while ((newline = events.find('\n')) != std::string::npos) {
          if (auto event = checked_event(events.substr(0, newline))) emit(std::move(*event));
          events.erase(0, newline + 1);
        }
        if (events.size() > kMaxEventLine) throw Error(ErrorCode::vm, "the guest sent an event over 64 MiB");
        break;
      }
      case FrameType::context_done: {
        output(0, {}, true);
        output(1, {}, true);
        const auto done = protocol::ContextDone::parse(frame->payload);
        result.status = done.status;
        result.execution_count = done.execution_count;
        result.duration_ms = static_cast<double>(done.duration_us) / 1000.0;
        result.stdout_truncated = result.stdout_truncated || done.stdout_truncated;
        result.stderr_truncated = result.stderr_truncated || done.stderr_truncated;
        result.reason = done.reason;
        if (!result.error && (done.status == "died" || done.status == "timeout")) {
          result.error = CodeError{done.status == "died" ? "ContextDied" : "TimeoutError",
                                   done.reason.empty() ? "the cell ran past its timeout of " +
                                                             std::to_string(request.timeout_s) + " s"
                                                       : done.reason,
                                   {}};
          if (sink) {
            sink->on_event({{"type", "error"},
                            {"name", result.error->name},
                            {"value", result.error->value},
                            {"traceback", json::array()}});
          }
        }
        return result;
      }
      default:
        throw Error(ErrorCode::vm, "the guest answered " + std::string(protocol::to_string(frame->type)) +
                                       " to a cell of code");
    }
  }
}

}  // namespace airlock::engine

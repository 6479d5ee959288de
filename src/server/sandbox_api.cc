// The sandbox endpoints of docs/api.yaml: /v1/sandboxes and below.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/sandbox_json.h"
#include "server/api.h"
#include "server/event_stream.h"
#include "server/responses.h"

namespace airlock::server {

using nlohmann::json;

namespace {

constexpr std::string_view kPrefix = "/v1/sandboxes/";

void send_sandbox(ResponseWriter& writer, int status, const engine::SandboxInfo& info) {
  writer.send(status, "application/json", dump(engine::to_json(info)));
}

}  // namespace

namespace {

std::string file_path_of(const HttpRequest& request) {
  auto path = query_parameter(request.query, "path");
  if (!path || path->empty()) throw Error(ErrorCode::invalid_argument, "missing query parameter 'path'");
  return *path;
}

// format=tar: a directory as a tar stream; raw (the default): a file's bytes.
bool wants_tar(const HttpRequest& request) {
  const auto format = query_parameter(request.query, "format");
  if (!format || *format == "raw") return false;
  if (*format == "tar") return true;
  throw Error(ErrorCode::invalid_argument,
              "query parameter 'format' must be raw or tar, not '" + *format + "'");
}

json entry_json(const protocol::DirEntry& entry) {
  json document = {{"name", entry.name},
                   {"type", entry.type},
                   {"size", entry.size},
                   {"mode", entry.mode},
                   {"mtime_ms", entry.mtime_ms}};
  if (!entry.target.empty()) document["target"] = entry.target;
  return document;
}

// Hands a handler the request's body in pieces, streamed or whole alike.
engine::ContentReader body_reader(const HttpRequest& request, size_t& offset) {
  return [&request, &offset](char* buffer, size_t max) -> size_t {
    if (request.body_stream) return request.body_stream->read(buffer, max);
    const size_t n = std::min(max, request.body.size() - offset);
    std::memcpy(buffer, request.body.data() + offset, n);
    offset += n;
    return n;
  };
}

}  // namespace

bool Api::streams_body(const std::string& method, const std::string& target) {
  if (target.rfind(kPrefix, 0) != 0) return false;
  const std::string rest = target.substr(kPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) return false;
  const std::string verb = rest.substr(slash + 1);
  if (method == "PUT" && verb == "files") return true;
  return method == "POST" && verb.rfind("execs/", 0) == 0 && verb.size() > 6 &&
         verb.compare(verb.size() - 6, 6, "/stdin") == 0;
}

engine::AcquiredGuest Api::acquire_for_sandbox(const engine::SandboxSpec& spec,
                                               const std::function<engine::ReadyGuest()>* start) {
  const engine::Profile& profile = spec.plan.profile;
  // What its execs write lands in its overlay, for its whole life.
  auto disk =
      disk_budget_.reserve((static_cast<uint64_t>(spec.plan.request.disk_mb) + kOverlayOverheadMb) << 20);
  if (!disk) {
    throw Error(ErrorCode::overloaded,
                "the disk writes of the runs and sandboxes in progress fill this airlockd's "
                "disk budget; try again, or ask for a smaller disk_mb");
  }
  auto reserved = std::make_shared<ByteBudget::Reservation>(std::move(*disk));
  engine::WarmPool* pool = nullptr;
  if (!start) {
    std::lock_guard lock(pools_mutex_);
    auto it = pools_.find(profile.name());
    if (it != pools_.end()) pool = it->second.get();
  }
  engine::AcquiredGuest acquired;
  if (pool) {
    engine::WarmPool::Lease lease = pool->acquire();
    if (lease.hit()) {
      acquired.room = lease.take_reservation();
      acquired.guest = std::move(*lease.take_guest());
      acquired.pool_hit = true;
      acquired.reserved = std::move(reserved);
      return acquired;
    }
  }
  // A copy of a snapshot (a fork may ask for 64) takes the room there is,
  // and answers at once when there is none.
  acquired.room = room_for_run(profile, start ? std::optional(std::chrono::milliseconds(0)) : std::nullopt);
  if (!acquired.room) {
    throw Error(ErrorCode::overloaded, "this airlockd's VM budget is full; try again, or destroy a sandbox");
  }
  // Started on the engine's own threads: the sandbox outlives this request's thread.
  acquired.guest = start ? (*start)() : engine_.start_lasting_guest(profile);
  acquired.reserved = std::move(reserved);
  return acquired;
}

void Api::handle_sandboxes(const HttpRequest& request, ResponseWriter& writer) {
  const std::string& target = request.target;
  if (target == "/v1/sandboxes") {
    if (request.method == "GET") {
      json list = json::array();
      for (const auto& info : sandboxes_->list()) list.push_back(engine::to_json(info));
      return writer.send(200, "application/json", dump({{"sandboxes", list}}));
    }
    if (request.method != "POST")
      return send_error(writer, 405, "invalid_argument", "use GET or POST", false);
    engine::SandboxRequest parsed =
        engine::sandbox_request_from_json(engine::parse_json_object(request.body));
    engine::SandboxSpec spec{engine_.plan(std::move(parsed.run)), parsed.ttl_s, parsed.idle_timeout_s};
    return send_sandbox(writer, 201, sandboxes_->create(std::move(spec)));
  }
  // /v1/sandboxes/{id}[/verb]
  const std::string rest = target.substr(kPrefix.size());
  const size_t slash = rest.find('/');
  const std::string id = rest.substr(0, slash);
  const std::string verb = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (verb.empty() && request.method == "GET") return send_sandbox(writer, 200, sandboxes_->info(id));
  if (verb.empty() && request.method == "DELETE") return send_sandbox(writer, 200, sandboxes_->destroy(id));
  if (verb == "touch" && request.method == "POST") return send_sandbox(writer, 200, sandboxes_->touch(id));
  if (handle_sandbox_lifecycle(id, verb, request, writer)) return;
  if (verb == "execs" && request.method == "POST") return exec_in_sandbox(id, request, writer);
  if (verb == "execs" && request.method == "GET") {
    json list = json::array();
    for (auto& info : sandboxes_->execs(id)) list.push_back(engine::to_json(std::move(info)));
    return writer.send(200, "application/json", dump({{"execs", list}}));
  }
  if (verb.rfind("execs/", 0) == 0) return handle_exec(id, verb.substr(6), request, writer);
  if (verb == "files" && request.method == "PUT") return upload_file(id, request, writer);
  if (verb == "files" && request.method == "GET") return download_file(id, request, writer);
  if (verb == "files" && request.method == "DELETE") {
    const std::string path = file_path_of(request);
    sandboxes_->remove(id, path);
    return writer.send(200, "application/json", dump({{"path", path}, {"removed", true}}));
  }
  if (verb == "list" && request.method == "GET") return list_directory(id, request, writer);
  if (verb == "stat" && request.method == "GET") {
    return writer.send(200, "application/json",
                       dump(entry_json(sandboxes_->stat(id, file_path_of(request)))));
  }
  if (verb == "ports" || verb.rfind("ports/", 0) == 0) return handle_ports(id, verb, request, writer);
  if (verb == "contexts") return handle_contexts(id, "", request, writer);
  if (verb.rfind("contexts/", 0) == 0) return handle_contexts(id, verb.substr(9), request, writer);
  send_error(writer, 404, "not_found", "no endpoint " + request.method + " " + target, false);
}

void Api::upload_file(const std::string& id, const HttpRequest& request, ResponseWriter& writer) {
  const std::string path = file_path_of(request);
  size_t offset = 0;
  if (wants_tar(request)) {
    const engine::ArchiveCounts counts = sandboxes_->upload_archive(id, path, body_reader(request, offset));
    return writer.send(200, "application/json",
                       dump({{"path", path},
                             {"files", counts.files},
                             {"directories", counts.directories},
                             {"symlinks", counts.symlinks},
                             {"bytes", counts.bytes}}));
  }
  uint32_t mode = 0644;
  if (auto text = query_parameter(request.query, "mode")) {
    if (text->empty() || text->size() > 4 || text->find_first_not_of("01234567") != std::string::npos) {
      throw Error(ErrorCode::invalid_argument, "query parameter 'mode' must be octal, e.g. 644: " + *text);
    }
    mode = static_cast<uint32_t>(std::stoul(*text, nullptr, 8));
  }
  // Streamed from the client to the guest in pieces (memory stays flat
  // whatever the size), or from a body read whole where nothing streams.
  const std::optional<uint64_t> size =
      request.body_stream ? request.body_stream->size() : std::optional<uint64_t>(request.body.size());
  // The guest is told a file's size before its first byte.
  if (!size) {
    return send_error(writer, 411, "invalid_argument",
                      "a file upload needs a Content-Length (a chunked body is for format=tar)", false);
  }
  sandboxes_->upload(id, path, *size, mode, body_reader(request, offset));
  writer.send(200, "application/json", dump({{"path", path}, {"bytes", *size}, {"mode", mode}}));
}

void Api::download_file(const std::string& id, const HttpRequest& request, ResponseWriter& writer) {
  const std::string path = file_path_of(request);
  const bool tar = wants_tar(request);
  bool streaming = false;
  // The status is known only once the guest answers: the stream begins with its first bytes.
  auto send = [&](std::string_view data) {
    if (!streaming) {
      writer.begin_stream(200, tar ? "application/x-tar" : "application/octet-stream");
      streaming = true;
    }
    return writer.write_chunk(std::string(data));
  };
  try {
    if (tar) {
      sandboxes_->download_archive(id, path, send);
    } else {
      sandboxes_->download(id, path, kMaxDownloadBytes, send);
    }
  } catch (const Error&) {
    if (!streaming) throw;  // answered with its status
    writer.abort_stream();  // a body cut off, never one that looks whole
    return;
  }
  if (!streaming) return writer.send(200, "application/octet-stream", "");
  writer.end_stream();
}

namespace {

json port_json(const engine::PortInfo& port) {
  return {{"port", port.guest_port},
          {"host", "127.0.0.1"},
          {"host_port", port.host_port},
          {"connections", port.connections}};
}

}  // namespace

void Api::handle_ports(const std::string& id, const std::string& verb, const HttpRequest& request,
                       ResponseWriter& writer) {
  if (verb == "ports" && request.method == "POST") {
    const json value = only_field(request.body, "port", "a forward");
    return writer.send(201, "application/json",
                       dump(port_json(sandboxes_->forward_port(id, engine::integer_field(value, "port")))));
  }
  if (verb == "ports" && request.method == "GET") {
    json list = json::array();
    for (const auto& port : sandboxes_->ports(id)) list.push_back(port_json(port));
    return writer.send(200, "application/json", dump({{"ports", list}}));
  }
  const std::string number = verb.substr(std::min<size_t>(verb.size(), 6));
  if (request.method == "DELETE" && !number.empty() && number.size() <= 5 &&
      number.find_first_not_of("0123456789") == std::string::npos) {
    sandboxes_->close_port(id, std::stoi(number));
    return writer.send(200, "application/json", dump({{"port", std::stoi(number)}, {"closed", true}}));
  }
  send_error(writer, 404, "not_found", "no endpoint " + request.method + " " + request.target, false);
}

void Api::list_directory(const std::string& id, const HttpRequest& request, ResponseWriter& writer) {
  const std::string path = file_path_of(request);
  uint64_t max_entries = 10000;
  if (auto text = query_parameter(request.query, "max_entries")) {
    if (text->empty() || text->size() > 6 || text->find_first_not_of("0123456789") != std::string::npos) {
      throw Error(ErrorCode::invalid_argument, "query parameter 'max_entries' must be a number: " + *text);
    }
    max_entries = std::stoull(*text);
  }
  const engine::DirectoryListing listing = sandboxes_->list(id, path, max_entries);
  json entries = json::array();
  for (const auto& entry : listing.entries) entries.push_back(entry_json(entry));
  writer.send(200, "application/json",
              dump({{"path", path}, {"entries", entries}, {"truncated", listing.truncated}}));
}

void Api::exec_in_sandbox(const std::string& id, const HttpRequest& http_request, ResponseWriter& writer) {
  const engine::ExecRequest request =
      engine::exec_request_from_json(engine::parse_json_object(http_request.body));
  sandboxes_->info(id);  // 404 before anything is reserved
  if (request.background) {
    const std::string exec_id = sandboxes_->start_exec(id, request);
    return writer.send(202, "application/json",
                       dump(engine::to_json(sandboxes_->exec_info(id, exec_id, false))));
  }
  const bool streaming = http_request.accept.find("application/x-ndjson") != std::string::npos;
  auto output = output_budget_.reserve(3 * (request.stdout_limit + request.stderr_limit) +
                                       (streaming ? EventStream::kDefaultMaxBytes : 0));
  if (!output)
    return refuse_over_budget(writer, "the output", "output", output_budget_, "stdout_limit/stderr_limit");
  engine::CancelToken cancel;
  CancelledOnDrain on_drain(*this, cancel);
  std::optional<EventStream> stream;
  std::optional<NdjsonSink> sink;
  engine::RunResult result;
  {
    // A client that hangs up cancels its exec; the sandbox stays.
    HangupWatch hangup(http_request.client_fd, cancel);
    if (streaming) {
      // Checked before the stream begins, so that a bad request or a 409 is still a status.
      engine::validate(request);
      sandboxes_->expect_live(id);
      stream.emplace(writer, cancel);
      sink.emplace(*stream);
    }
    try {
      result = sandboxes_->exec(id, request, sink ? &*sink : nullptr, &cancel);
    } catch (const Error& e) {
      if (!streaming) throw;
      result.status = engine::RunStatus::internal_error;
      result.error = e.what();
    }
  }
  std::string body = result_body(std::move(result));
  if (streaming) {
    stream->finish(R"({"type":"result","result":)" + body + "}\n");
  } else {
    writer.send(200, "application/json", std::move(body));
  }
}

}  // namespace airlock::server

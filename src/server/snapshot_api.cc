// The endpoints of docs/api.yaml for pausing sandboxes, their snapshots,
// restores and forks.
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/sandbox_json.h"
#include "server/api.h"
#include "server/responses.h"

namespace airlock::server {

using nlohmann::json;

namespace {

constexpr std::string_view kSnapshots = "/v1/snapshots";

void send_json(ResponseWriter& writer, int status, const json& document) {
  writer.send(status, "application/json", dump(document));
}

// An optional body: empty means {}.
json body_object(const HttpRequest& request) {
  return request.body.empty() ? json::object() : engine::parse_json_object(request.body);
}

}  // namespace

bool Api::handle_sandbox_lifecycle(const std::string& id, const std::string& verb, const HttpRequest& request,
                                   ResponseWriter& writer) {
  if (request.method != "POST") return false;
  if (verb == "pause") {
    send_json(writer, 200, engine::to_json(sandboxes_->pause(id)));
  } else if (verb == "resume") {
    send_json(writer, 200, engine::to_json(sandboxes_->resume(id)));
  } else if (verb == "snapshots") {
    const engine::SnapshotRequest parsed = engine::snapshot_request_from_json(body_object(request));
    send_json(writer, 201, engine::snapshot_json(sandboxes_->snapshot(id, parsed.name, parsed.labels)));
  } else if (verb == "fork") {
    const json value = only_field(request.body, "count", "a fork");
    const auto started = SteadyClock::now();
    const auto copies = sandboxes_->fork(id, engine::integer_field(value, "count"));
    json answers = json::array();
    for (const auto& copy : copies) {
      answers.push_back(copy.sandbox ? json{{"sandbox", engine::to_json(*copy.sandbox)}}
                                     : json{{"error", error_json(*copy.error)}});
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
    send_json(writer, 200, {{"snapshot_ms", took.count()}, {"copies", answers}});
  } else {
    return false;
  }
  return true;
}

void Api::handle_snapshots(const HttpRequest& request, ResponseWriter& writer) {
  const std::string& target = request.target;
  if (target == kSnapshots) {
    if (request.method != "GET") return send_error(writer, 405, "invalid_argument", "use GET", false);
    json list = json::array();
    for (const auto& meta : sandboxes_->snapshots()) list.push_back(engine::snapshot_json(meta));
    return send_json(writer, 200, {{"snapshots", list}});
  }
  // /v1/snapshots/{snapshot}[/restore]
  const std::string rest = target.substr(kSnapshots.size() + 1);
  const size_t slash = rest.find('/');
  const std::string snapshot = rest.substr(0, slash);
  const std::string verb = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (verb.empty() && request.method == "GET") {
    return send_json(writer, 200, engine::snapshot_json(sandboxes_->snapshot_info(snapshot)));
  }
  if (verb.empty() && request.method == "DELETE") {
    return send_json(writer, 200, engine::snapshot_json(sandboxes_->remove_snapshot(snapshot)));
  }
  if (verb == "verify" && request.method == "POST") {
    return send_json(writer, 200, engine::snapshot_json(sandboxes_->verify_snapshot(snapshot)));
  }
  if (verb == "restore" && request.method == "POST") {
    int ttl_s = 0;
    int idle_timeout_s = 0;
    const json body = body_object(request);
    for (const auto& [key, value] : body.items()) {
      if (key == "ttl_s") {
        ttl_s = engine::integer_field(value, key);
      } else if (key == "idle_timeout_s") {
        idle_timeout_s = engine::integer_field(value, key);
      } else {
        throw Error(ErrorCode::invalid_argument,
                    "unknown field '" + key + "' (a restore takes ttl_s, idle_timeout_s)");
      }
    }
    if (ttl_s < 0 || idle_timeout_s < 0)
      throw Error(ErrorCode::invalid_argument, "ttl_s and idle_timeout_s are positive");
    return send_json(writer, 201, engine::to_json(sandboxes_->restore(snapshot, ttl_s, idle_timeout_s)));
  }
  send_error(writer, 404, "not_found", "no endpoint " + request.method + " " + target, false);
}

}  // namespace airlock::server

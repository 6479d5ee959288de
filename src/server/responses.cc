#include "server/responses.h"

#include "engine/request_json.h"

namespace airlock::server {

using nlohmann::json;

namespace {

// One table from error to HTTP status and API error code.
struct HttpError {
  int status;
  const char* code;
  bool retryable;
};

HttpError http_error_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return {400, "invalid_argument", false};
    case ErrorCode::not_found: return {404, "not_found", false};
    case ErrorCode::permission_denied: return {403, "forbidden", false};
    case ErrorCode::unavailable: return {503, "unavailable", true};
    case ErrorCode::conflict: return {409, "conflict", false};
    case ErrorCode::overloaded: return {429, "overloaded", true};
    case ErrorCode::too_large: return {413, "too_large", false};
    case ErrorCode::no_space: return {507, "no_space", false};
    default: return {500, "internal", false};
  }
}

}  // namespace

std::string dump(const json& document) {
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string result_body(engine::RunResult result) { return engine::to_json_text(std::move(result)); }

void send_error(ResponseWriter& writer, int status, const std::string& code, const std::string& message,
                bool retryable) {
  writer.send(status, "application/json",
              dump({{"error", {{"code", code}, {"message", message}, {"retryable", retryable}}}}));
}

void send_error(ResponseWriter& writer, const Error& error) {
  HttpError mapped = http_error_for(error.code());
  send_error(writer, mapped.status, mapped.code, error.what(), mapped.retryable);
}

json error_json(const Error& error) {
  HttpError mapped = http_error_for(error.code());
  return {{"code", mapped.code}, {"message", error.what()}, {"retryable", mapped.retryable}};
}

json only_field(const std::string& body, const std::string& name, const std::string& what) {
  const json document = engine::parse_json_object(body);
  for (const auto& [key, value] : document.items()) {
    if (key != name)
      throw Error(ErrorCode::invalid_argument,
                  "unknown field '" + key + "' (" + what + " takes " + name + ")");
  }
  if (!document.contains(name)) throw Error(ErrorCode::invalid_argument, "missing field '" + name + "'");
  return document[name];
}

}  // namespace airlock::server

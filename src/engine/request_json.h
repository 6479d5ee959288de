#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/run_request.h"

namespace airlock::engine {

// The one JSON form of a RunRequest (the body of POST /v1/run,
// docs/api.yaml), used by the CLI to speak to airlockd, by airlockd to read
// it, and by the tests. Results have theirs in run_result.h.

// Every field the API has (stdin only as bytes: an fd stays on its host).
nlohmann::json to_json(const RunRequest& request);

// From any client's bytes: each field's type and range is checked here,
// unknown fields are refused, `language` and `code` are required; the
// request's bounds are checked later, once, when it is planned
// (Engine::plan). Throws Error(invalid_argument) naming the field.
RunRequest run_request_from_json(const nlohmann::json& document);

// The body as a JSON object, or Error(invalid_argument).
nlohmann::json parse_json_object(const std::string& body);

// A JSON integer that fits an int, or Error(invalid_argument) naming `name`.
int integer_field(const nlohmann::json& value, const std::string& name);

}  // namespace airlock::engine

#include "protocol/context_messages.h"

#include <nlohmann/json.hpp>

#include "protocol/json_fields.h"

namespace airlock::protocol {

using nlohmann::json;
using namespace detail;

namespace {

constexpr size_t kMaxName = 64;

// An exec's payload inside another message: its own parser checks it.
json exec_json(const Exec& exec) { return json::parse(exec.to_payload()); }

}  // namespace

std::string ContextStart::to_payload() const {
  return serialize(json{{"context", context}, {"language", language}, {"exec", exec_json(exec)}});
}

ContextStart ContextStart::parse(std::string_view payload) {
  json object = parse_object(payload, "context_start");
  ContextStart message;
  message.context = get_string(object, "context", "context_start", kMaxName);
  message.language = get_string(object, "language", "context_start", kMaxName);
  const json& exec = field(object, "exec", "context_start");
  if (!exec.is_object()) fail("context_start", "field 'exec' is not an object");
  message.exec = Exec::parse(exec.dump());
  return message;
}

std::string ContextRun::to_payload() const {
  return serialize(json{{"context", context},
                        {"code", code},
                        {"timeout_ms", timeout_ms},
                        {"stdout_limit", stdout_limit},
                        {"stderr_limit", stderr_limit}});
}

ContextRun ContextRun::parse(std::string_view payload) {
  json object = parse_object(payload, "context_run");
  ContextRun message;
  message.context = get_string(object, "context", "context_run", kMaxName);
  message.code = get_string(object, "code", "context_run", kMaxCellCode);
  message.timeout_ms = get_unsigned(object, "timeout_ms", "context_run", 1ULL << 40);
  message.stdout_limit = get_unsigned(object, "stdout_limit", "context_run", 1ULL << 34);
  message.stderr_limit = get_unsigned(object, "stderr_limit", "context_run", 1ULL << 34);
  return message;
}

std::string ContextControl::to_payload() const {
  return serialize(json{{"context", context}, {"action", action}});
}

ContextControl ContextControl::parse(std::string_view payload) {
  json object = parse_object(payload, "context_control");
  ContextControl message;
  message.context = get_string(object, "context", "context_control", kMaxName);
  message.action = get_string(object, "action", "context_control", kMaxName);
  if (message.action != "interrupt" && message.action != "restart" && message.action != "stop" &&
      message.action != "list") {
    fail("context_control", "unknown action '" + message.action + "'");
  }
  return message;
}

std::string ContextList::to_payload() const {
  json list = json::array();
  for (const auto& info : contexts) {
    list.push_back({{"context", info.context},
                    {"language", info.language},
                    {"state", info.state},
                    {"execution_count", info.execution_count},
                    {"pid", info.pid},
                    {"started_at_ms", info.started_at_ms},
                    {"reason", info.reason}});
  }
  return serialize(json{{"contexts", list}});
}

ContextList ContextList::parse(std::string_view payload) {
  json object = parse_object(payload, "context_info");
  const json& list = field(object, "contexts", "context_info");
  if (!list.is_array() || list.size() > kMaxListLength)
    fail("context_info", "field 'contexts' is not a list");
  ContextList message;
  for (const auto& item : list) {
    if (!item.is_object()) fail("context_info", "a context is not an object");
    ContextInfo info;
    info.context = get_string(item, "context", "context_info", kMaxName);
    info.language = get_string(item, "language", "context_info", kMaxName);
    info.state = get_string(item, "state", "context_info", kMaxName);
    info.execution_count = get_unsigned(item, "execution_count", "context_info");
    info.pid = get_integer(item, "pid", "context_info");
    info.started_at_ms = get_integer(item, "started_at_ms", "context_info");
    info.reason = get_string(item, "reason", "context_info");
    message.contexts.push_back(std::move(info));
  }
  return message;
}

std::string ContextDone::to_payload() const {
  return serialize(json{{"status", status},
                        {"execution_count", execution_count},
                        {"duration_us", duration_us},
                        {"stdout_truncated", stdout_truncated},
                        {"stderr_truncated", stderr_truncated},
                        {"reason", reason}});
}

ContextDone ContextDone::parse(std::string_view payload) {
  json object = parse_object(payload, "context_done");
  ContextDone message;
  message.status = get_string(object, "status", "context_done", kMaxName);
  if (message.status != "ok" && message.status != "error" && message.status != "interrupted" &&
      message.status != "timeout" && message.status != "died") {
    fail("context_done", "unknown status '" + message.status + "'");
  }
  message.execution_count = get_unsigned(object, "execution_count", "context_done");
  message.duration_us = get_unsigned(object, "duration_us", "context_done");
  message.stdout_truncated = get_bool(object, "stdout_truncated", "context_done");
  message.stderr_truncated = get_bool(object, "stderr_truncated", "context_done");
  message.reason = get_string(object, "reason", "context_done");
  return message;
}

}  // namespace airlock::protocol

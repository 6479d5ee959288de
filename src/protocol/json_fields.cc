#include "protocol/json_fields.h"

#include "common/error.h"

namespace airlock::protocol::detail {

using nlohmann::json;

[[noreturn]] void fail(std::string_view message_name, std::string_view problem) {
  throw Error(ErrorCode::protocol,
              "invalid " + std::string(message_name) + " message: " + std::string(problem));
}

json parse_object(std::string_view payload, std::string_view message_name) {
  json document = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) fail(message_name, "payload is not valid JSON");
  if (!document.is_object()) fail(message_name, "payload is not a JSON object");
  return document;
}

const json& field(const json& object, const char* name, std::string_view message_name) {
  auto it = object.find(name);
  if (it == object.end()) fail(message_name, std::string("missing field '") + name + "'");
  return *it;
}

std::string get_string(const json& object, const char* name, std::string_view message_name, size_t max_size) {
  const json& value = field(object, name, message_name);
  if (!value.is_string()) fail(message_name, std::string("field '") + name + "' is not a string");
  const auto& text = value.get_ref<const std::string&>();
  if (text.size() > max_size) fail(message_name, std::string("field '") + name + "' is too long");
  return text;
}

uint64_t get_unsigned(const json& object, const char* name, std::string_view message_name, uint64_t max) {
  const json& value = field(object, name, message_name);
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
    fail(message_name, std::string("field '") + name + "' is not a non-negative integer");
  }
  uint64_t number = value.get<uint64_t>();
  if (number > max) fail(message_name, std::string("field '") + name + "' is out of range");
  return number;
}

int64_t get_integer(const json& object, const char* name, std::string_view message_name) {
  const json& value = field(object, name, message_name);
  if (!value.is_number_integer()) fail(message_name, std::string("field '") + name + "' is not an integer");
  return value.get<int64_t>();
}

bool get_bool(const json& object, const char* name, std::string_view message_name) {
  const json& value = field(object, name, message_name);
  if (!value.is_boolean()) fail(message_name, std::string("field '") + name + "' is not a boolean");
  return value.get<bool>();
}

std::optional<int> get_optional_int(const json& object, const char* name, std::string_view message_name,
                                    int min, int max) {
  const json& value = field(object, name, message_name);
  if (value.is_null()) return std::nullopt;
  if (!value.is_number_integer()) fail(message_name, std::string("field '") + name + "' is not an integer");
  int64_t number = value.get<int64_t>();
  if (number < min || number > max) fail(message_name, std::string("field '") + name + "' is out of range");
  return static_cast<int>(number);
}

std::vector<std::string> get_string_list(const json& object, const char* name,
                                         std::string_view message_name) {
  const json& value = field(object, name, message_name);
  if (!value.is_array()) fail(message_name, std::string("field '") + name + "' is not a list");
  if (value.size() > kMaxListLength) fail(message_name, std::string("field '") + name + "' is too long");
  std::vector<std::string> result;
  for (const auto& item : value) {
    if (!item.is_string()) fail(message_name, std::string("field '") + name + "' holds a non-string");
    result.push_back(item.get<std::string>());
  }
  return result;
}

std::string serialize(const json& document) {
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace airlock::protocol::detail

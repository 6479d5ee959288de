#pragma once

// Reading and writing the JSON payloads of protocol messages: each reader
// treats its input as hostile and throws Error(protocol) naming the message
// and the field that is wrong. For messages.cc and its siblings only.

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::protocol::detail {

inline constexpr size_t kMaxStringField = 64 * 1024;
inline constexpr size_t kMaxListLength = 4096;

[[noreturn]] void fail(std::string_view message_name, std::string_view problem);
nlohmann::json parse_object(std::string_view payload, std::string_view message_name);
const nlohmann::json& field(const nlohmann::json& object, const char* name, std::string_view message_name);
std::string get_string(const nlohmann::json& object, const char* name, std::string_view message_name,
                       size_t max_size = kMaxStringField);
uint64_t get_unsigned(const nlohmann::json& object, const char* name, std::string_view message_name,
                      uint64_t max = std::numeric_limits<uint64_t>::max());
int64_t get_integer(const nlohmann::json& object, const char* name, std::string_view message_name);
bool get_bool(const nlohmann::json& object, const char* name, std::string_view message_name);
std::optional<int> get_optional_int(const nlohmann::json& object, const char* name,
                                    std::string_view message_name, int min, int max);
std::vector<std::string> get_string_list(const nlohmann::json& object, const char* name,
                                         std::string_view message_name);
// Replaces invalid UTF-8 instead of throwing: a message must always encode.
std::string serialize(const nlohmann::json& document);

}  // namespace airlock::protocol::detail

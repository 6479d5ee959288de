#include "protocol/messages.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "protocol/json_fields.h"

namespace airlock::protocol {

using nlohmann::json;
using namespace detail;

namespace {

json optional_int_json(const std::optional<int>& value) { return value ? json(*value) : json(nullptr); }

}  // namespace

std::string Hello::to_payload() const {
  return serialize(json{{"protocol", protocol}, {"agent_version", agent_version}, {"uptime_ms", uptime_ms}});
}

Hello Hello::parse(std::string_view payload) {
  json object = parse_object(payload, "hello");
  Hello hello;
  hello.protocol = static_cast<int>(get_unsigned(object, "protocol", "hello", 1 << 20));
  hello.agent_version = get_string(object, "agent_version", "hello");
  hello.uptime_ms = static_cast<int64_t>(get_unsigned(object, "uptime_ms", "hello", 1ULL << 40));
  return hello;
}

std::string HelloAck::to_payload() const { return serialize(json{{"protocol", protocol}}); }

HelloAck HelloAck::parse(std::string_view payload) {
  json object = parse_object(payload, "hello_ack");
  HelloAck ack;
  ack.protocol = static_cast<int>(get_unsigned(object, "protocol", "hello_ack", 1 << 20));
  return ack;
}

std::string WriteFile::to_payload() const {
  json document = {{"path", path}, {"size", size}, {"mode", mode}};
  if (as_user) document["as_user"] = true;
  if (mtime_ms != 0) document["mtime_ms"] = mtime_ms;
  return serialize(document);
}

WriteFile WriteFile::parse(std::string_view payload) {
  json object = parse_object(payload, "write_file");
  WriteFile message;
  message.path = get_string(object, "path", "write_file");
  message.size = get_unsigned(object, "size", "write_file");
  message.mode = static_cast<uint32_t>(get_unsigned(object, "mode", "write_file", 07777));
  if (object.contains("as_user")) message.as_user = get_bool(object, "as_user", "write_file");
  if (object.contains("mtime_ms")) message.mtime_ms = get_integer(object, "mtime_ms", "write_file");
  return message;
}

std::string ReadFile::to_payload() const {
  return serialize(json{{"path", path}, {"max_bytes", max_bytes}, {"window", window}});
}

ReadFile ReadFile::parse(std::string_view payload) {
  json object = parse_object(payload, "read_file");
  ReadFile message;
  message.path = get_string(object, "path", "read_file");
  message.max_bytes = get_unsigned(object, "max_bytes", "read_file");
  message.window = get_unsigned(object, "window", "read_file", 1ULL << 40);
  return message;
}

std::string FileEnd::to_payload() const { return serialize(json{{"bytes", bytes}, {"mode", mode}}); }

FileEnd FileEnd::parse(std::string_view payload) {
  json object = parse_object(payload, "file_end");
  FileEnd message;
  message.bytes = get_unsigned(object, "bytes", "file_end");
  message.mode = static_cast<uint32_t>(get_unsigned(object, "mode", "file_end", 07777));
  return message;
}

std::string FileWritten::to_payload() const { return serialize(json{{"bytes", bytes}}); }

FileWritten FileWritten::parse(std::string_view payload) {
  json object = parse_object(payload, "file_written");
  FileWritten message;
  message.bytes = get_unsigned(object, "bytes", "file_written");
  return message;
}

std::string Exec::to_payload() const {
  return serialize(json{{"argv", argv},
                        {"env", env},
                        {"cwd", cwd},
                        {"uid", uid},
                        {"gid", gid},
                        {"stdout_limit", stdout_limit},
                        {"stderr_limit", stderr_limit},
                        {"timeout_ms", timeout_ms},
                        {"max_processes", max_processes},
                        {"max_open_files", max_open_files},
                        {"disk_limit_bytes", disk_limit_bytes},
                        {"prestarted", prestarted},
                        {"job_format", job_format},
                        {"tty", tty},
                        {"rows", rows},
                        {"cols", cols}});
}

Exec Exec::parse(std::string_view payload) {
  json object = parse_object(payload, "exec");
  Exec message;
  message.argv = get_string_list(object, "argv", "exec");
  if (message.argv.empty()) fail("exec", "argv is empty");
  message.env = get_string_list(object, "env", "exec");
  message.cwd = get_string(object, "cwd", "exec");
  message.uid = static_cast<uint32_t>(get_unsigned(object, "uid", "exec", 65534));
  message.gid = static_cast<uint32_t>(get_unsigned(object, "gid", "exec", 65534));
  message.stdout_limit = get_unsigned(object, "stdout_limit", "exec");
  message.stderr_limit = get_unsigned(object, "stderr_limit", "exec");
  message.timeout_ms = get_unsigned(object, "timeout_ms", "exec");
  message.max_processes = get_unsigned(object, "max_processes", "exec", 1 << 22);
  message.max_open_files = get_unsigned(object, "max_open_files", "exec", 1 << 20);
  message.disk_limit_bytes = get_unsigned(object, "disk_limit_bytes", "exec", 1ULL << 40);
  message.prestarted = object.contains("prestarted") && get_bool(object, "prestarted", "exec");
  if (object.contains("job_format")) {
    message.job_format = get_string(object, "job_format", "exec");
    if (message.job_format != "json" && message.job_format != "shell") {
      fail("exec", "job_format must be \"json\" or \"shell\"");
    }
  }
  message.tty = object.contains("tty") && get_bool(object, "tty", "exec");
  if (message.tty) {
    message.rows = static_cast<uint16_t>(get_unsigned(object, "rows", "exec", 1000));
    message.cols = static_cast<uint16_t>(get_unsigned(object, "cols", "exec", 1000));
  }
  return message;
}

std::string Resize::to_payload() const { return serialize(json{{"rows", rows}, {"cols", cols}}); }

Resize Resize::parse(std::string_view payload) {
  json object = parse_object(payload, "resize");
  Resize message;
  message.rows = static_cast<uint16_t>(get_unsigned(object, "rows", "resize", 1000));
  message.cols = static_cast<uint16_t>(get_unsigned(object, "cols", "resize", 1000));
  return message;
}

std::string ListDir::to_payload() const {
  return serialize(json{{"path", path}, {"max_entries", max_entries}});
}

ListDir ListDir::parse(std::string_view payload) {
  json object = parse_object(payload, "list_dir");
  ListDir message;
  message.path = get_string(object, "path", "list_dir");
  message.max_entries = get_unsigned(object, "max_entries", "list_dir", ListDir::kMaxEntries);
  return message;
}

std::string Listing::to_payload() const {
  json list = json::array();
  for (const auto& entry : entries) {
    list.push_back({{"name", entry.name},
                    {"type", entry.type},
                    {"size", entry.size},
                    {"mode", entry.mode},
                    {"mtime_ms", entry.mtime_ms}});
    if (!entry.target.empty()) list.back()["target"] = entry.target;
  }
  // Names are bytes; one that is not UTF-8 is shown with replacement characters.
  return json{{"entries", list}, {"more", more}, {"truncated", truncated}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

Listing Listing::parse(std::string_view payload) {
  json object = parse_object(payload, "listing");
  Listing message;
  const json& entries = field(object, "entries", "listing");
  if (!entries.is_array() || entries.size() > Listing::kEntriesPerFrame) fail("listing", "bad 'entries'");
  for (const auto& item : entries) {
    if (!item.is_object()) fail("listing", "an entry is not an object");
    DirEntry entry;
    entry.name = get_string(item, "name", "listing");
    entry.type = get_string(item, "type", "listing");
    entry.size = get_unsigned(item, "size", "listing");
    entry.mode = static_cast<uint32_t>(get_unsigned(item, "mode", "listing", 07777));
    entry.mtime_ms = get_integer(item, "mtime_ms", "listing");
    if (item.contains("target")) entry.target = get_string(item, "target", "listing");
    message.entries.push_back(std::move(entry));
  }
  message.more = get_bool(object, "more", "listing");
  message.truncated = get_bool(object, "truncated", "listing");
  return message;
}

std::string RemoveFile::to_payload() const { return serialize(json{{"path", path}}); }

RemoveFile RemoveFile::parse(std::string_view payload) {
  json object = parse_object(payload, "remove_file");
  return RemoveFile{get_string(object, "path", "remove_file")};
}

std::string StatPath::to_payload() const { return serialize(json{{"path", path}}); }

StatPath StatPath::parse(std::string_view payload) {
  json object = parse_object(payload, "stat");
  return StatPath{get_string(object, "path", "stat")};
}

std::string MakeNode::to_payload() const {
  return serialize(json{{"path", path}, {"kind", kind}, {"mode", mode}, {"target", target}});
}

MakeNode MakeNode::parse(std::string_view payload) {
  json object = parse_object(payload, "make_node");
  MakeNode message;
  message.path = get_string(object, "path", "make_node");
  message.kind = get_string(object, "kind", "make_node");
  if (message.kind != "directory" && message.kind != "symlink") fail("make_node", "bad 'kind'");
  message.mode = static_cast<uint32_t>(get_unsigned(object, "mode", "make_node", 07777));
  message.target = get_string(object, "target", "make_node");
  if (message.kind == "symlink" && message.target.empty()) fail("make_node", "a symlink needs a 'target'");
  return message;
}

std::string PortOpen::to_payload() const { return serialize(json{{"port", port}}); }

PortOpen PortOpen::parse(std::string_view payload) {
  json object = parse_object(payload, "port_open");
  PortOpen message;
  message.port = static_cast<uint16_t>(get_unsigned(object, "port", "port_open", 65535));
  if (message.port == 0) fail("port_open", "field 'port' is out of range");
  return message;
}

std::string FileAck::to_payload() const { return serialize(json{{"bytes", bytes}}); }

FileAck FileAck::parse(std::string_view payload) {
  json object = parse_object(payload, "file_ack");
  FileAck ack;
  ack.bytes = get_unsigned(object, "bytes", "file_ack", 1ULL << 40);
  return ack;
}

std::string Signal::to_payload() const { return serialize(json{{"signal", signal}}); }

Signal Signal::parse(std::string_view payload) {
  json object = parse_object(payload, "signal");
  Signal message;
  message.signal = static_cast<int>(get_unsigned(object, "signal", "signal", 64));
  if (message.signal == 0) fail("signal", "field 'signal' is out of range");
  return message;
}

std::string StdinAck::to_payload() const { return serialize(json{{"bytes", bytes}}); }

StdinAck StdinAck::parse(std::string_view payload) {
  json object = parse_object(payload, "stdin_ack");
  StdinAck ack;
  ack.bytes = get_unsigned(object, "bytes", "stdin_ack", 1ULL << 40);
  return ack;
}

std::string ExitReport::to_payload() const {
  return serialize(json{{"exit_code", optional_int_json(exit_code)},
                        {"signal", optional_int_json(signal)},
                        {"oom", oom},
                        {"output_limit", output_limit},
                        {"timed_out", timed_out},
                        {"stdout_truncated", stdout_truncated},
                        {"stderr_truncated", stderr_truncated},
                        {"duration_us", duration_us},
                        {"start_us", start_us},
                        {"run_us", run_us}});
}

ExitReport ExitReport::parse(std::string_view payload) {
  json object = parse_object(payload, "exit");
  ExitReport report;
  report.exit_code = get_optional_int(object, "exit_code", "exit", 0, 255);
  report.signal = get_optional_int(object, "signal", "exit", 1, 64);
  if (report.exit_code.has_value() == report.signal.has_value()) {
    fail("exit", "exactly one of exit_code and signal must be set");
  }
  report.oom = get_bool(object, "oom", "exit");
  report.output_limit = get_bool(object, "output_limit", "exit");
  report.timed_out = get_bool(object, "timed_out", "exit");
  report.stdout_truncated = get_bool(object, "stdout_truncated", "exit");
  report.stderr_truncated = get_bool(object, "stderr_truncated", "exit");
  report.duration_us = get_unsigned(object, "duration_us", "exit", 1ULL << 50);
  if (object.contains("start_us")) report.start_us = get_unsigned(object, "start_us", "exit", 1ULL << 50);
  if (object.contains("run_us")) report.run_us = get_unsigned(object, "run_us", "exit", 1ULL << 50);
  return report;
}

namespace {

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  return hex;
}

std::string from_hex(const std::string& hex, std::string_view message_name) {
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    fail(message_name, "field 'entropy_hex' is not lowercase hex");
  };
  if (hex.size() % 2) fail(message_name, "field 'entropy_hex' has an odd length");
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return bytes;
}

}  // namespace

std::string Resume::to_payload() const {
  return serialize(
      json{{"realtime_ns", realtime_ns}, {"entropy_hex", to_hex(entropy)}, {"new_identity", new_identity}});
}

Resume Resume::parse(std::string_view payload) {
  json object = parse_object(payload, "resume");
  Resume resume;
  resume.realtime_ns = static_cast<int64_t>(get_unsigned(object, "realtime_ns", "resume", 1ULL << 62));
  resume.entropy = from_hex(get_string(object, "entropy_hex", "resume"), "resume");
  resume.new_identity = get_bool(object, "new_identity", "resume");
  return resume;
}

std::string Resumed::to_payload() const { return serialize(json{{"uptime_ms", uptime_ms}}); }

Resumed Resumed::parse(std::string_view payload) {
  json object = parse_object(payload, "resumed");
  Resumed resumed;
  resumed.uptime_ms = static_cast<int64_t>(get_unsigned(object, "uptime_ms", "resumed", 1ULL << 40));
  return resumed;
}

std::string NetworkSetup::to_payload() const {
  json host_list = json::array();
  for (const auto& [name, host_address] : hosts) host_list.push_back(json::array({name, host_address}));
  return serialize(json{{"address", address},
                        {"prefix_length", prefix_length},
                        {"gateway", gateway},
                        {"nameserver", nameserver},
                        {"hosts", host_list}});
}

NetworkSetup NetworkSetup::parse(std::string_view payload) {
  constexpr std::string_view kName = "network_setup";
  json object = parse_object(payload, kName);
  NetworkSetup setup;
  setup.address = get_string(object, "address", kName);
  setup.prefix_length = static_cast<int>(get_unsigned(object, "prefix_length", kName, 32));
  setup.gateway = get_string(object, "gateway", kName);
  setup.nameserver = get_string(object, "nameserver", kName);
  const json& host_list = field(object, "hosts", kName);
  if (!host_list.is_array() || host_list.size() > kMaxHosts)
    fail(kName, "field 'hosts' is not a list of at most 256");
  for (const auto& entry : host_list) {
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_string()) {
      fail(kName, "field 'hosts' holds an entry that is not [name, address]");
    }
    const auto& name = entry[0].get_ref<const std::string&>();
    const auto& host_address = entry[1].get_ref<const std::string&>();
    // These become lines of /etc/hosts: nothing that could start another line or field.
    auto plain = [](const std::string& text) {
      return !text.empty() && text.size() <= 253 &&
             text.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") == std::string::npos;
    };
    if (!plain(name) || !plain(host_address)) fail(kName, "field 'hosts' holds a malformed name or address");
    setup.hosts.emplace_back(name, host_address);
  }
  return setup;
}

std::string MountShares::to_payload() const {
  json list = json::array();
  for (const auto& [tag, path] : shares) list.push_back({{"tag", tag}, {"path", path}});
  return serialize(json{{"shares", list}});
}

MountShares MountShares::parse(std::string_view payload) {
  constexpr std::string_view kName = "mount";
  json object = parse_object(payload, kName);
  const json& list = field(object, "shares", kName);
  if (!list.is_array() || list.size() > kMaxShares) fail(kName, "field 'shares' is not a list of at most 16");
  MountShares message;
  for (const auto& share : list) {
    if (!share.is_object()) fail(kName, "field 'shares' holds a non-object");
    std::string tag = get_string(share, "tag", kName);
    if (tag.empty() || tag.size() > 31 ||
        tag.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos) {
      fail(kName, "a share's tag is not 1-31 lowercase letters and digits");
    }
    message.shares.emplace_back(std::move(tag), get_string(share, "path", kName));
  }
  return message;
}

std::string ErrorReport::to_payload() const {
  json document = {{"message", message}};
  if (!kind.empty()) document["kind"] = kind;
  return serialize(document);
}

ErrorReport ErrorReport::parse(std::string_view payload) {
  json object = parse_object(payload, "error");
  ErrorReport report;
  report.message = get_string(object, "message", "error");
  if (object.contains("kind")) report.kind = get_string(object, "kind", "error");
  return report;
}

}  // namespace airlock::protocol

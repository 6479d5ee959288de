#include "protocol/guest_path.h"

#include "common/error.h"

namespace airlock::protocol {

namespace {

std::vector<std::string> split(const std::string& path) {
  if (path.find('\0') != std::string::npos) {
    throw Error(ErrorCode::invalid_argument, "file path contains a NUL byte");
  }
  if (path.empty() || path[0] != '/') {
    throw Error(ErrorCode::invalid_argument, "file path '" + path + "' is not absolute");
  }
  if (path.size() > 4096) throw Error(ErrorCode::invalid_argument, "file path is longer than 4096 bytes");
  std::vector<std::string> parts;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(pos, end - pos);
    if (part == "..") {
      throw Error(ErrorCode::invalid_argument, "file path '" + path + "' contains '..'");
    }
    if (!part.empty() && part != ".") parts.push_back(part);
    pos = end + 1;
  }
  return parts;
}

}  // namespace

std::vector<std::string> split_guest_path(const std::string& path) {
  std::vector<std::string> parts = split(path);
  if (parts.empty()) throw Error(ErrorCode::invalid_argument, "file path '" + path + "' names no file");
  return parts;
}

std::vector<std::string> split_guest_directory(const std::string& path) { return split(path); }

std::string join_guest_path(const std::vector<std::string>& parts) {
  std::string path;
  for (const auto& part : parts) path += "/" + part;
  return path.empty() ? "/" : path;
}

}  // namespace airlock::protocol

#include "engine/run_request.h"

#include <algorithm>

#include "common/error.h"
#include "engine/languages.h"
#include "image/image_name.h"
#include "network/policy.h"
#include "protocol/guest_path.h"

namespace airlock::engine {

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

bool is_valid_env_name(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// Where a share may not go: over the system the program runs on, or over the
// kernel's own views.
constexpr const char* kReservedGuestPaths[] = {"/bin",   "/boot",   "/dev",  "/etc",  "/lib", "/lib32",
                                               "/lib64", "/libx32", "/proc", "/root", "/run", "/sbin",
                                               "/sys",   "/tmp",    "/usr",  "/var"};

bool is_within(const std::string& path, const std::string& directory) {
  return path == directory || path.rfind(directory + "/", 0) == 0;
}

void check_mount(const MountSpec& mount) {
  if (mount.host_path.empty() || mount.host_path[0] != '/') {
    reject("mount host path '" + mount.host_path + "' is not absolute");
  }
  if (mount.host_path.find('\0') != std::string::npos || mount.host_path.find(',') != std::string::npos) {
    reject("mount host path '" + mount.host_path + "' contains a NUL byte or a comma");
  }
  const std::string guest = protocol::join_guest_path(protocol::split_guest_path(mount.guest_path));
  if (guest != mount.guest_path)
    reject("mount guest path '" + mount.guest_path + "' is not normalised (" + guest + ")");
  if (guest == "/" || guest == "/home" || guest == "/home/sandbox") {
    reject("mount guest path '" + guest + "' would hide the program's own files; use a directory below it");
  }
  for (const char* reserved : kReservedGuestPaths) {
    if (is_within(guest, reserved)) {
      reject("mount guest path '" + guest + "' is inside " + reserved +
             ", which belongs to the guest system");
    }
  }
}

}  // namespace

MountSpec parse_mount(const std::string& text) {
  const size_t first = text.find(':');
  const size_t last = text.rfind(':');
  if (first == std::string::npos || first == last) {
    reject("mount '" + text + "' is not of the form ro:HOST_DIR:GUEST_DIR");
  }
  const std::string mode = text.substr(0, first);
  if (mode == "rw") {
    reject("mount '" + text +
           "': rw mounts are not supported (nothing a guest does may write the host's files); mount it ro: "
           "and return results through the program's output");
  }
  if (mode != "ro") reject("mount '" + text + "': mode '" + mode + "' is not ro");
  MountSpec mount{text.substr(first + 1, last - first - 1), text.substr(last + 1)};
  // Normalised here so that equal mounts spell the same everywhere after.
  try {
    mount.guest_path = protocol::join_guest_path(protocol::split_guest_path(mount.guest_path));
  } catch (const Error& e) {
    reject("mount '" + text + "': guest " + e.what());
  }
  check_mount(mount);
  return mount;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length;
    uint32_t code_point;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2;
      code_point = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code_point = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code_point = c & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      unsigned char continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (continuation & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kMinForLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

std::pair<std::string, std::string> parse_env_assignment(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos) reject("environment variable '" + text + "' is not of the form NAME=value");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void validate(const RunRequest& request) {
  if (!request.language.empty()) {
    find_language(request.language);
  } else if (request.image.empty()) {
    reject("no language given (supported: " + supported_languages() + "), and no image to take it from");
  }
  if (!request.image.empty()) image::check_image_name(request.image);
  if (request.code.empty()) reject("code is empty");
  if (request.code.size() > Limits::kMaxCodeBytes) {
    reject("code is " + std::to_string(request.code.size()) + " bytes; the limit is " +
           std::to_string(Limits::kMaxCodeBytes) + " bytes (1 MiB)");
  }
  if (request.timeout_s < Limits::kMinTimeoutS || request.timeout_s > Limits::kMaxTimeoutS) {
    reject("timeout " + std::to_string(request.timeout_s) + " s is out of range (" +
           std::to_string(Limits::kMinTimeoutS) + "-" + std::to_string(Limits::kMaxTimeoutS) + " s)");
  }
  if (request.memory_mb < Limits::kMinMemoryMb || request.memory_mb > Limits::kMaxMemoryMb) {
    reject("memory " + std::to_string(request.memory_mb) + " MiB is out of range (" +
           std::to_string(Limits::kMinMemoryMb) + "-" + std::to_string(Limits::kMaxMemoryMb) + " MiB)");
  }
  auto check_range = [](const char* what, int value, int min, int max) {
    if (value < min || value > max) {
      reject(std::string(what) + " " + std::to_string(value) + " is out of range (" + std::to_string(min) +
             "-" + std::to_string(max) + ")");
    }
  };
  check_range("cpus", request.cpus, 1, Limits::kMaxCpus);
  check_range("process limit", request.max_processes, Limits::kMinProcesses, Limits::kMaxProcesses);
  check_range("open file limit", request.max_open_files, Limits::kMinOpenFiles, Limits::kMaxOpenFiles);
  check_range("disk MiB", request.disk_mb, Limits::kMinDiskMb, Limits::kMaxDiskMb);
  network::parse_network_policy(request.network);
  if (request.mounts.size() > Limits::kMaxMounts) {
    reject(std::to_string(request.mounts.size()) + " mounts; the limit is " +
           std::to_string(Limits::kMaxMounts));
  }
  for (size_t i = 0; i < request.mounts.size(); ++i) {
    check_mount(request.mounts[i]);
    for (size_t j = 0; j < i; ++j) {
      const auto& a = request.mounts[i].guest_path;
      const auto& b = request.mounts[j].guest_path;
      if (is_within(a, b) || is_within(b, a)) reject("mount guest paths '" + b + "' and '" + a + "' overlap");
    }
  }
  if (request.stdout_limit > Limits::kMaxOutputLimit) {
    reject("stdout limit " + std::to_string(request.stdout_limit) + " bytes exceeds the maximum of " +
           std::to_string(Limits::kMaxOutputLimit));
  }
  if (request.stderr_limit > Limits::kMaxOutputLimit) {
    reject("stderr limit " + std::to_string(request.stderr_limit) + " bytes exceeds the maximum of " +
           std::to_string(Limits::kMaxOutputLimit));
  }
  if (request.env.size() > Limits::kMaxEnvVars) {
    reject("too many environment variables (" + std::to_string(request.env.size()) + "; the limit is " +
           std::to_string(Limits::kMaxEnvVars) + ")");
  }
  size_t env_bytes = 0;
  for (const auto& [name, value] : request.env) {
    if (!is_valid_env_name(name)) {
      reject("environment variable name '" + name +
             "' is invalid (letters, digits and _, not starting with a digit)");
    }
    if (value.find('\0') != std::string::npos || !is_valid_utf8(value)) {
      reject("environment variable " + name + " has a value that is not NUL-free UTF-8");
    }
    env_bytes += name.size() + value.size() + 2;
  }
  if (env_bytes > Limits::kMaxEnvBytes) {
    reject("environment is " + std::to_string(env_bytes) + " bytes; the limit is " +
           std::to_string(Limits::kMaxEnvBytes));
  }
}

}  // namespace airlock::engine

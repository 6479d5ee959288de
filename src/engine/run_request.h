#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "vmm/accel_probe.h"

namespace airlock::engine {

// Limits every request is checked against before any VM starts.
struct Limits {
  static constexpr size_t kMaxCodeBytes = 1 << 20;
  static constexpr int kMinTimeoutS = 1;
  static constexpr int kMaxTimeoutS = 300;
  static constexpr int kDefaultTimeoutS = 30;
  static constexpr int kMinMemoryMb = 128;
  static constexpr int kMaxMemoryMb = 2048;
  static constexpr int kDefaultMemoryMb = 256;
  static constexpr uint64_t kDefaultStdoutLimit = 1 << 20;
  static constexpr uint64_t kDefaultStderrLimit = 100 << 10;
  static constexpr uint64_t kMaxOutputLimit = 64 << 20;
  static constexpr size_t kMaxEnvVars = 256;
  static constexpr size_t kMaxEnvBytes = 64 << 10;
  static constexpr int kMaxCpus = 8;
  // Processes (and threads) the program may have alive at once, itself included.
  static constexpr int kMinProcesses = 8;
  static constexpr int kMaxProcesses = 4096;
  static constexpr int kDefaultProcesses = 256;
  static constexpr int kMinOpenFiles = 16;
  static constexpr int kMaxOpenFiles = 65536;
  static constexpr int kDefaultOpenFiles = 1024;
  // Writable space on the guest's disk. The images are built with the
  // default free; a larger limit grows the guest's filesystem for that run
  // into its disk's spare room (kDiskRoomMb beyond the image).
  static constexpr int kMinDiskMb = 1;
  static constexpr int kDefaultDiskMb = 256;
  static constexpr int kMaxDiskMb = 4096;
  static constexpr uint64_t kDiskRoomMb = kMaxDiskMb;
  static constexpr size_t kMaxMounts = 8;
};

// A host directory the program sees, read-only, at `guest_path`.
struct MountSpec {
  std::string host_path;   // absolute; canonical (no symlinks) once resolved on the host
  std::string guest_path;  // absolute, normalised
  std::string to_string() const { return "ro:" + host_path + ":" + guest_path; }
  bool operator==(const MountSpec&) const = default;
};

// "ro:HOST:GUEST" -> MountSpec (syntax only: the host path is not looked at).
// "rw:" is refused: nothing a guest does may write the host's files. Throws
// Error(invalid_argument) naming what is wrong.
MountSpec parse_mount(const std::string& text);

// Where a run's standard input comes from: a host fd streamed as the program
// reads (the CLI's stdin), or bytes given up front (the API). Neither: empty.
struct StdinSource {
  int fd = -1;
  std::string data;
};

struct RunRequest {
  // Empty: the image's first language (an image must then be named).
  std::string language;
  // The root filesystem image (ImageCatalog); empty: the language's own,
  // named like it. Engine::plan fills in both.
  std::string image;
  // The image's own environment (RootfsImage::env), put in by Engine::plan,
  // never by a caller: every program of the run or sandbox gets it after the
  // language's defaults and before its own env.
  std::vector<std::string> image_env;
  std::string code;
  std::vector<std::pair<std::string, std::string>> env;
  int timeout_s = Limits::kDefaultTimeoutS;
  int memory_mb = Limits::kDefaultMemoryMb;
  int cpus = 1;
  int max_processes = Limits::kDefaultProcesses;
  int max_open_files = Limits::kDefaultOpenFiles;
  int disk_mb = Limits::kDefaultDiskMb;
  // "none" (no network device in the guest), "allow:DOMAIN[,DOMAIN...]"
  // (HTTP/HTTPS to those names only, filtered on the host) or "full".
  std::string network = "none";
  std::vector<MountSpec> mounts;
  uint64_t stdout_limit = Limits::kDefaultStdoutLimit;
  uint64_t stderr_limit = Limits::kDefaultStderrLimit;
  StdinSource stdin_source;
  std::string kernel;  // empty: the manifest's default
  vmm::AccelChoice accel = vmm::AccelChoice::automatic;
  // Restore a clone of the profile's template snapshot (built on first use)
  // instead of booting a kernel; false always boots a fresh VM.
  bool use_snapshot = true;
  // Never hand the program to the template's prestarted interpreter: start
  // the language's interpreter for this run. For Python that is the way to
  // a hash() secret of the run's own (docs/security.md); it costs a start.
  bool fresh_interpreter = false;
};

// Throws Error(invalid_argument) naming the first field that is out of bounds.
void validate(const RunRequest& request);

// "NAME=value" -> {NAME, value}; throws Error(invalid_argument) if malformed.
std::pair<std::string, std::string> parse_env_assignment(const std::string& text);

bool is_valid_utf8(std::string_view text);

}  // namespace airlock::engine

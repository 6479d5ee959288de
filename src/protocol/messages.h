#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::protocol {

// Bumped on any incompatible change; host and agent must agree exactly.
inline constexpr int kProtocolVersion = 12;

// Control messages travel as JSON payloads. Each parse() treats its input as
// hostile: wrong types, missing fields or out-of-range values throw
// Error(protocol) naming the message and field.

struct Hello {
  int protocol = kProtocolVersion;
  std::string agent_version;
  int64_t uptime_ms = 0;  // guest clock at the time the agent was ready
  std::string to_payload() const;
  static Hello parse(std::string_view payload);
};

struct HelloAck {
  int protocol = kProtocolVersion;
  std::string to_payload() const;
  static HelloAck parse(std::string_view payload);
};

struct WriteFile {
  std::string path;  // absolute path inside the guest's root filesystem
  uint64_t size = 0;
  uint32_t mode = 0644;
  // A file the caller uploads: made with the sandbox user's permissions
  // (refused where that user may not write) and answered with file_written.
  bool as_user = false;
  // Set on the file once written (Unix time in ms); 0 leaves it at now.
  int64_t mtime_ms = 0;
  std::string to_payload() const;
  static WriteFile parse(std::string_view payload);
};

struct Exec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd = "/";
  uint32_t uid = 1000;
  uint32_t gid = 1000;
  uint64_t stdout_limit = 1 << 20;
  uint64_t stderr_limit = 100 << 10;
  uint64_t timeout_ms = 30000;  // the guest's own backstop; the host enforces it too
  // Hard rlimits of the program: processes of its uid (RLIMIT_NPROC) and open files.
  uint64_t max_processes = 256;
  uint64_t max_open_files = 1024;
  // Bytes of the root filesystem the run may fill; 0 leaves it as it is.
  uint64_t disk_limit_bytes = 0;
  // Hand the program to the interpreter prestarted in the template (its
  // control socket gets {"path","argv","env","cwd"}) instead of exec'ing argv.
  bool prestarted = false;
  // In a `prestart`: how the agent writes this interpreter its jobs:
  // "json" (one JSON line) or "shell" (a byte count line, then bash words
  // the agent quoted, for a bash that can only read that much cheaply).
  std::string job_format = "json";
  // A terminal instead of pipes: the program's stdin, stdout and stderr are
  // one pty (its output comes as stdout_data), rows x cols in size.
  bool tty = false;
  uint16_t rows = 24;
  uint16_t cols = 80;
  std::string to_payload() const;
  static Exec parse(std::string_view payload);
};

// Host -> guest: a tty exec's terminal has a new size.
struct Resize {
  uint16_t rows = 24;
  uint16_t cols = 80;
  std::string to_payload() const;
  static Resize parse(std::string_view payload);
};

struct StdinAck {
  uint64_t bytes = 0;
  std::string to_payload() const;
  static StdinAck parse(std::string_view payload);
};

// Host -> guest: the reader of a download took `bytes` more (flow control).
struct FileAck {
  uint64_t bytes = 0;
  std::string to_payload() const;
  static FileAck parse(std::string_view payload);
};

// Host -> guest: deliver signal number `signal` (1..64) to the exec's program.
struct Signal {
  int signal = 0;
  std::string to_payload() const;
  static Signal parse(std::string_view payload);
};

struct ExitReport {
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool oom = false;           // the guest kernel's OOM killer ended the program
  bool output_limit = false;  // killed because stdout or stderr passed its limit
  bool timed_out = false;     // killed by the guest's backstop timer
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  uint64_t duration_us = 0;  // program started -> this report
  // Where the guest's time went, in its own clock: the exec frame taken ->
  // the program started (or handed to the prestarted interpreter), and
  // started -> its exit known (its notice, or the kernel's).
  uint64_t start_us = 0;
  uint64_t run_us = 0;
  std::string to_payload() const;
  static ExitReport parse(std::string_view payload);
};

// Sent to every clone right after it is restored: clones of one snapshot
// start with identical RNG state and a clock frozen at snapshot time. Also
// to a guest that was paused (its clock stood still meanwhile).
struct Resume {
  int64_t realtime_ns = 0;  // host CLOCK_REALTIME now
  std::string entropy;      // fresh host random bytes to mix into the guest CRNG
  // A copy of a live sandbox (a user snapshot restored, a fork): the guest
  // takes a new identity (hostname, machine-id, boot id), tells running
  // interpreters to reseed, and forgets the streams of its source's host
  // (their programs run on, unheard).
  bool new_identity = false;
  std::string to_payload() const;
  static Resume parse(std::string_view payload);
};

struct Resumed {
  int64_t uptime_ms = 0;
  std::string to_payload() const;
  static Resumed parse(std::string_view payload);
};

// Sent once to a freshly booted guest whose profile has a network (before
// any snapshot is taken): one interface, a static address, and the names
// the guest may use. Addresses are dotted IPv4; names are DNS names.
struct NetworkSetup {
  static constexpr size_t kMaxHosts = 256;
  std::string address;
  int prefix_length = 24;
  std::string gateway;                                     // empty: no default route
  std::string nameserver;                                  // empty: no resolver
  std::vector<std::pair<std::string, std::string>> hosts;  // name -> address
  std::string to_payload() const;
  static NetworkSetup parse(std::string_view payload);
};

// The host directories a guest mounts read-only: each virtio-9p tag at its
// absolute guest path. Sent after boot or restore, never before a snapshot
// (a mounted 9p export cannot migrate).
struct MountShares {
  static constexpr size_t kMaxShares = 16;
  std::vector<std::pair<std::string, std::string>> shares;  // tag -> guest path
  std::string to_payload() const;
  static MountShares parse(std::string_view payload);
};

// A file the sandbox user may read, sent back in file_data frames (at most
// max_bytes of it: a larger one is an error of kind "too_large").
struct ReadFile {
  std::string path;
  uint64_t max_bytes = 0;
  // Bytes the guest may send ahead of the host's file_ack; 0: no limit.
  uint64_t window = 0;
  std::string to_payload() const;
  static ReadFile parse(std::string_view payload);
};

struct FileEnd {
  uint64_t bytes = 0;
  uint32_t mode = 0;
  std::string to_payload() const;
  static FileEnd parse(std::string_view payload);
};

struct FileWritten {
  uint64_t bytes = 0;
  std::string to_payload() const;
  static FileWritten parse(std::string_view payload);
};

// A directory of the sandbox user's, listed (at most max_entries, in
// listing frames of at most kEntriesPerFrame each).
struct ListDir {
  static constexpr uint64_t kMaxEntries = 100000;
  std::string path;
  uint64_t max_entries = 10000;
  std::string to_payload() const;
  static ListDir parse(std::string_view payload);
};

struct DirEntry {
  std::string name;
  std::string type;  // file, directory, symlink, fifo, socket, char_device, block_device
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits
  int64_t mtime_ms = 0;
  std::string target;  // a symlink's, as written in it (never followed)
};

struct Listing {
  static constexpr size_t kEntriesPerFrame = 500;
  std::vector<DirEntry> entries;
  bool more = false;       // another listing frame follows
  bool truncated = false;  // the last frame only: there were more than max_entries
  std::string to_payload() const;
  static Listing parse(std::string_view payload);
};

struct RemoveFile {
  std::string path;
  std::string to_payload() const;
  static RemoveFile parse(std::string_view payload);
};

// A path described as it is (lstat), answered by a listing of one entry
// named by its last component.
struct StatPath {
  std::string path;
  std::string to_payload() const;
  static StatPath parse(std::string_view payload);
};

// A directory (kind "directory", mode) or a symlink (kind "symlink",
// target) made as the sandbox user, with missing parents; answered by a
// listing of it. An existing directory is kept (and given the mode), an
// existing symlink is replaced; anything else there is refused.
struct MakeNode {
  std::string path;
  std::string kind;
  uint32_t mode = 0755;
  std::string target;
  std::string to_payload() const;
  static MakeNode parse(std::string_view payload);
};

// Host -> guest: open a connection to this port of the guest's loopback.
struct PortOpen {
  uint16_t port = 0;  // 1-65535
  std::string to_payload() const;
  static PortOpen parse(std::string_view payload);
};

struct ErrorReport {
  ErrorReport() = default;
  explicit ErrorReport(std::string text, std::string failure_kind = {})
      : message(std::move(text)), kind(std::move(failure_kind)) {}
  std::string message;
  // For file operations, what kind of failure (the host maps it to a
  // status): not_found, permission_denied, not_a_file, exists, no_space,
  // too_large, invalid. Empty otherwise.
  std::string kind;
  std::string to_payload() const;
  static ErrorReport parse(std::string_view payload);
};

}  // namespace airlock::protocol

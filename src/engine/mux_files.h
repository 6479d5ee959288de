#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "engine/guest_mux.h"
#include "protocol/messages.h"

namespace airlock::engine {

// Files of a sandbox, moved on a stream of their own beside its execs.

// Writes `size` bytes to `path` as the sandbox user (refused where that
// user may not write), with `mode`, and waits until they are on the guest's
// disk. `read` hands the bytes over in pieces (into its buffer, returning
// how many; 0 before `size` is an error): at most a megabyte of them is
// held at once. Errors: Error with the code of the guest's refusal
// (not_found, permission_denied, conflict for a directory or a special
// file, no_space), Error(vm) if the guest stops or stalls for `stall`.
using ContentReader = std::function<size_t(char* buffer, size_t max)>;
// `mtime_ms`, when not 0, is set on the file once it is written.
void upload_file(GuestMux& mux, const std::string& path, uint64_t size, uint32_t mode,
                 const ContentReader& read, std::chrono::milliseconds stall, int64_t mtime_ms = 0);

// Sends the file at `path`, which the sandbox user must be able to read, to
// `on_data` in chunks of at most 64 KiB as they arrive. The guest sends
// only as far ahead as a window of 4 MiB: memory stays flat however large
// the file, and a reader that stops only stops this transfer. `on_data`
// returns false to give up. Returns its size and mode. Errors as for
// upload_file, too_large past max_bytes.
protocol::FileEnd download_file(GuestMux& mux, const std::string& path, uint64_t max_bytes,
                                const std::function<bool(std::string_view)>& on_data,
                                SteadyClock::time_point deadline);

// The entries of the directory `path` the sandbox user may read, sorted by
// name (at most max_entries; `truncated` says there were more). Errors as
// for upload_file.
struct DirectoryListing {
  std::vector<protocol::DirEntry> entries;
  bool truncated = false;
};
DirectoryListing list_directory(GuestMux& mux, const std::string& path, uint64_t max_entries,
                                SteadyClock::time_point deadline);

// Removes a file, a symlink (never what it points at) or an empty directory
// as the sandbox user. Errors as for upload_file; conflict for a directory
// that is not empty.
void remove_path(GuestMux& mux, const std::string& path, SteadyClock::time_point deadline);

// The path as it is (lstat: a symlink is described with its target, not
// followed), walked there as the sandbox user. Its name is the path's last
// component ("/" for the root). Errors as for upload_file.
protocol::DirEntry describe_path(GuestMux& mux, const std::string& path, SteadyClock::time_point deadline);

// Makes a directory or a symlink as protocol::MakeNode says, and describes
// it. Errors as for upload_file; conflict where something else has the name.
protocol::DirEntry make_node(GuestMux& mux, const protocol::MakeNode& node, SteadyClock::time_point deadline);

// An error frame of a file operation as the Error its kind means.
[[noreturn]] void throw_file_error(const protocol::ErrorReport& report);

}  // namespace airlock::engine

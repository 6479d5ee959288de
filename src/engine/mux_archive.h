#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "engine/guest_mux.h"
#include "engine/mux_files.h"

namespace airlock::engine {

// Directories moved as tar streams. The archive is read and written here,
// on the host (libarchive); the guest only ever sees the file operations of
// mux_files, each walked there as the sandbox user without following a
// symlink. So no archive parser runs in the guest's PID 1, and an archive
// can do nothing a caller could not do with those operations one by one.

struct ArchiveCounts {
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t bytes = 0;    // of the files' contents
  uint64_t skipped = 0;  // sockets, FIFOs and devices, left out of a packed archive
};

// The most entries one archive may hold, and the deepest a packed tree goes.
inline constexpr uint64_t kMaxArchiveEntries = 1'000'000;
inline constexpr int kMaxArchiveDepth = 128;

// Extracts the tar stream that `read` gives (0 at its end; ustar, pax or
// GNU, plain or compressed with gzip, bzip2, xz or zstd) under the
// directory `directory`, which is made if missing. Directories, plain files
// (their permission bits and mtime kept, setuid/setgid/sticky dropped) and
// symlinks are made as the sandbox user; an entry that is a hard link, a
// device or a FIFO, or whose name is absolute or has a "..", is refused
// with Error(invalid_argument) naming it. Entries already made before a
// failure stay. Errors of the file operations as in mux_files.
ArchiveCounts unpack_archive(GuestMux& mux, const std::string& directory, const ContentReader& read,
                             std::chrono::milliseconds stall);

// Writes a tar stream (pax) of `path` to `on_data` (false: the reader went
// away, Error(cancelled)): a directory as "./" and what is under it
// ("./a", "./sub/b"), a file or symlink as one entry by its name. Only what
// the sandbox user may read; sockets, FIFOs and devices are left out. A
// file that grows while it is read is cut at the size it was listed with,
// one that shrinks is padded with zeros. Each file, and each directory's
// listing, has `per_file` to arrive. Errors as in mux_files;
// too_large for a directory with more than ListDir::kMaxEntries entries, or
// a tree past kMaxArchiveEntries or kMaxArchiveDepth.
ArchiveCounts pack_archive(GuestMux& mux, const std::string& path,
                           const std::function<bool(std::string_view)>& on_data,
                           std::chrono::milliseconds per_file);

// The guest path an archive entry's name means under `directory`:
// "./a/b" and "a/b" are directory + "/a/b"; "." and "./" the directory
// itself. Error(invalid_argument) naming the entry for an empty or absolute
// name or one with a ".." component.
std::string archive_entry_path(const std::string& directory, const std::string& name);

}  // namespace airlock::engine

#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace airlock::guest {

// The components of an absolute guest path, after dropping empty and "."
// ones. Throws Error(invalid_argument) for a relative path, "..", a NUL
// byte, or a path that names no file. Bytes from the host, but checked as
// if hostile: they will come from API clients once files can be uploaded.
std::vector<std::string> split_guest_path(const std::string& path);

// Creates (or truncates) `path` inside the root at `root_dir`, owned by
// uid/gid, making missing parent directories. No component may be a symlink
// or "..": a program that ran earlier in the same VM cannot redirect the write.
UniqueFd create_file_in_root(const std::string& root_dir, const std::string& path, mode_t mode, uid_t uid,
                             gid_t gid);

}  // namespace airlock::guest

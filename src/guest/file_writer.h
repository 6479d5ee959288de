#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.h"

namespace airlock::guest {

// Creates (or truncates) `path` inside the root at `root_dir`, owned by
// uid/gid, making missing parent directories. No component may be a symlink
// or "..": a program that ran earlier in the same VM cannot redirect the write.
UniqueFd create_file_in_root(const std::string& root_dir, const std::string& path, mode_t mode, uid_t uid,
                             gid_t gid);

}  // namespace airlock::guest

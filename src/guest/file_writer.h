#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace airlock::guest {

// Makes directory `path` inside the root at `root_dir` (and its missing
// parents, root-owned, 0755) without following any symlink, and returns an
// O_PATH descriptor of it: a mount point nothing can redirect.
UniqueFd make_directory_in_root(const std::string& root_dir, const std::string& path);

// Creates (or truncates) `path` inside the root at `root_dir`, owned by
// uid/gid, making missing parent directories. No component may be a symlink
// or "..": a program that ran earlier in the same VM cannot redirect the write.
UniqueFd create_file_in_root(const std::string& root_dir, const std::string& path, mode_t mode, uid_t uid,
                             gid_t gid);

}  // namespace airlock::guest

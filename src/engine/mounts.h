#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "engine/run_request.h"
#include "vmm/qemu_spec.h"

namespace airlock::engine {

// Host directories a VM may share, and how a mount's directory is found:
// resolved once (symlinks followed, here, when the request is checked), and
// opened again for every VM that shares it without following any symlink,
// beneath the mount root it was found in. A directory swapped for a symlink
// (to "/", say) between the check and a VM start, or before a pool refill,
// fails that start instead of being shared.
using MountRoots = std::optional<std::vector<std::string>>;  // nullopt: any directory

// The mount with its host directory resolved and checked: a directory others
// may read, not "/", inside `roots` if given. Throws Error(invalid_argument).
MountSpec resolve_mount(const MountSpec& mount, const MountRoots& roots = std::nullopt);

// Opens a resolved mount's directory for one VM: beneath its root, no
// symlink on the way, checked again on the open descriptor (directory,
// readable by others, not "/"). Throws Error(invalid_argument) naming what
// changed.
UniqueFd open_mount(const MountSpec& resolved, const MountRoots& roots);

// The virtio-9p devices of a profile's mounts, bound from `opened` (one
// descriptor per mount, in order); the guest mounts each by its tag.
std::vector<vmm::SharedDirectory> shared_dirs_of(const std::vector<MountSpec>& mounts,
                                                 const std::vector<UniqueFd>& opened);
std::vector<std::pair<std::string, std::string>> share_mount_points(const std::vector<MountSpec>& mounts);

}  // namespace airlock::engine

#pragma once

#include "protocol/messages.h"

namespace airlock::guest {

// Mounts each shared host directory (a virtio-9p export, read-only on the
// host side too) at its path in the program's root: read-only, no setuid,
// no device files. Mount points are made without following symlinks.
// Throws Error naming the share that failed.
void mount_shares(const protocol::MountShares& request);

}  // namespace airlock::guest

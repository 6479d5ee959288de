#pragma once

namespace airlock::guest {

// A program's /proc/sys/kernel/random/boot_id is a file of ours bound over
// the kernel's (which cannot change while the kernel runs), so that a copy
// of a live sandbox can be given a boot id of its own. Call once the
// program's /proc is mounted.
void bind_boot_id();

// What a copy of a live sandbox (restored, forked) makes fresh for itself
// once its kernel RNG is reseeded: hostname, /etc/machine-id, boot id.
void take_new_identity();

}  // namespace airlock::guest

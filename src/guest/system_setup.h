#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace airlock::guest {

// Where the language image is mounted; user programs are chrooted into it.
inline constexpr const char* kRootfsMount = "/rootfs";

// Mounts /proc, /sys and /dev for the agent itself.
void mount_early_filesystems();

// Loads every /modules/*.ko in name order (only the fallback kernel has any).
void load_modules();

// key=value words of /proc/cmdline ("airlock.root" -> "/dev/vda").
std::map<std::string, std::string> kernel_parameters();

// Mounts the image at kRootfsMount and what a program expects inside it:
// /proc (hiding other users' processes, so the agent is invisible), /dev,
// /dev/shm and /tmp.
void mount_root(const std::string& device, int timeout_ms);

// Leaves `bytes` of the root filesystem's free space writable by reserving
// the rest through ext4's reserved_clusters, which ordinary writes may not
// use, root's included: a program then gets ENOSPC at its disk limit.
// 0 leaves the filesystem as it is. Throws Error if the knob is missing.
void limit_writable_space(const std::string& device, uint64_t bytes);

// Milliseconds since the guest kernel started.
long long uptime_ms();

}  // namespace airlock::guest

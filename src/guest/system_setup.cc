#include "guest/system_setup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"
#include "guest/identity.h"

namespace airlock::guest {

namespace {

void mount_or_throw(const char* source, const std::string& target, const char* type, unsigned long flags,
                    const char* data) {
  ::mkdir(target.c_str(), 0755);
  if (::mount(source, target.c_str(), type, flags, data) < 0) throw_errno("mount", target);
}

}  // namespace

void mount_early_filesystems() {
  mount_or_throw("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  mount_or_throw("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  if (::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY) {
    throw_errno("mount", "/dev");
  }
}

void load_modules() {
  DIR* dir = ::opendir("/modules");
  if (dir == nullptr) return;
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".ko") == 0) names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string path = "/modules/" + name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("open", path);
    if (::syscall(SYS_finit_module, fd.get(), "", 0) < 0 && errno != EEXIST) {
      throw_errno("finit_module", path);
    }
  }
}

std::map<std::string, std::string> kernel_parameters() {
  std::map<std::string, std::string> parameters;
  std::string cmdline = read_file("/proc/cmdline", 64 * 1024);
  size_t pos = 0;
  while (pos < cmdline.size()) {
    size_t end = cmdline.find_first_of(" \n", pos);
    if (end == std::string::npos) end = cmdline.size();
    std::string word = cmdline.substr(pos, end - pos);
    size_t eq = word.find('=');
    if (!word.empty()) {
      if (eq == std::string::npos) {
        parameters[word] = "";
      } else {
        parameters[word.substr(0, eq)] = word.substr(eq + 1);
      }
    }
    pos = end + 1;
  }
  return parameters;
}

void mount_root(const std::string& device, int timeout_ms) {
  const std::string root = kRootfsMount;
  ::mkdir(root.c_str(), 0755);
  for (int waited = 0;; waited += 10) {
    if (::mount(device.c_str(), root.c_str(), "ext4", MS_NOATIME, nullptr) == 0) break;
    // The block device may not be probed yet when drivers are modules.
    if ((errno != ENOENT && errno != ENXIO) || waited >= timeout_ms) throw_errno("mount", device);
    timespec pause{0, 10'000'000};
    ::nanosleep(&pause, nullptr);
  }
  mount_or_throw("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2");
  bind_boot_id();
  mount_or_throw("devtmpfs", root + "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
  mount_or_throw("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  // Terminals for tty execs; without devpts a tty exec fails, nothing else does.
  ::mkdir((root + "/dev/pts").c_str(), 0755);
  ::mount("devpts", (root + "/dev/pts").c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620");
  // What udev makes on an installed system and scripts rely on: bash's
  // `diff <(a) <(b)` opens /dev/fd/N; programs read /dev/stdin.
  const std::pair<const char*, const char*> links[] = {
      {"fd", "/proc/self/fd"},
      {"stdin", "/proc/self/fd/0"},
      {"stdout", "/proc/self/fd/1"},
      {"stderr", "/proc/self/fd/2"},
  };
  for (const auto& [name, target] : links) ::symlink(target, (root + "/dev/" + name).c_str());
  ::chmod((root + "/tmp").c_str(), 01777);
}

namespace {

// ext4's online resize (fs/ext4/ext4.h; not in the kernel's uapi headers).
constexpr unsigned long kExt4ResizeFs = _IOW('f', 16, uint64_t);

// Grows the root filesystem to fill its block device (the host gives every
// disk spare room beyond the image), online.
void grow_to_device(const std::string& device, uint64_t block) {
  UniqueFd disk(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (!disk) throw_errno("open", device);
  uint64_t device_bytes = 0;
  if (::ioctl(disk.get(), BLKGETSIZE64, &device_bytes) < 0) throw_errno("BLKGETSIZE64", device);
  UniqueFd root(::open(kRootfsMount, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open", kRootfsMount);
  uint64_t blocks = device_bytes / block;
  if (::ioctl(root.get(), kExt4ResizeFs, &blocks) < 0) throw_errno("EXT4_IOC_RESIZE_FS", kRootfsMount);
}

}  // namespace

void limit_writable_space(const std::string& device, uint64_t bytes) {
  if (bytes == 0) return;
  struct statfs info {};
  if (::statfs(kRootfsMount, &info) < 0) throw_errno("statfs", kRootfsMount);
  // f_bfree counts reserved clusters as free; a cluster is one block here (no bigalloc).
  const uint64_t block = static_cast<uint64_t>(info.f_bsize);
  const uint64_t wanted = (bytes + block - 1) / block;
  if (static_cast<uint64_t>(info.f_bfree) < wanted) {
    grow_to_device(device, block);
    if (::statfs(kRootfsMount, &info) < 0) throw_errno("statfs", kRootfsMount);
  }
  const uint64_t free_blocks = static_cast<uint64_t>(info.f_bfree);
  if (free_blocks < wanted) {
    throw Error(ErrorCode::unavailable, "the guest's disk has " + std::to_string(free_blocks * block >> 20) +
                                            " MiB free, less than the " + std::to_string(bytes >> 20) +
                                            " MiB asked for");
  }
  const std::string knob = "/sys/fs/ext4/" + device.substr(device.rfind('/') + 1) + "/reserved_clusters";
  write_file(knob, std::to_string(free_blocks - wanted));
}

long long uptime_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<long long>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

}  // namespace airlock::guest

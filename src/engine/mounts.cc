#include "engine/mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "common/error.h"

namespace airlock::engine {

namespace {

[[noreturn]] void refuse(const MountSpec& mount, const std::string& problem) {
  throw Error(ErrorCode::invalid_argument, "mount host path '" + mount.host_path + "' " + problem);
}

// The virtio-9p tag of a profile's i-th mount: the device QEMU gets and the
// share the agent mounts are matched by it.
std::string share_tag(size_t i) { return "share" + std::to_string(i); }

bool is_host_root(const struct stat& info) {
  struct stat root {};
  return ::stat("/", &root) == 0 && root.st_dev == info.st_dev && root.st_ino == info.st_ino;
}

// What may be shared, judged on the directory itself (a path or an open descriptor's).
void check_shareable(const MountSpec& mount, const struct stat& info) {
  if (!S_ISDIR(info.st_mode)) refuse(mount, "is not a directory");
  if (is_host_root(info)) refuse(mount, "is the host's root directory");
  if ((info.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH)) {
    refuse(mount,
           "is not readable by others: QEMU shares it as an unprivileged user, so only what others "
           "may read can be shared");
  }
}

std::optional<std::string> real_path(const std::string& path) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return std::nullopt;
  return std::string(resolved);
}

bool is_beneath(const std::string& path, const std::string& base) {
  return path == base || path.rfind(base == "/" ? base : base + "/", 0) == 0;
}

// The resolved root `path` lies in, or nullopt.
std::optional<std::string> root_of(const std::string& path, const std::vector<std::string>& roots) {
  for (const auto& root : roots) {
    auto base = real_path(root);
    if (base && is_beneath(path, *base)) return base;
  }
  return std::nullopt;
}

}  // namespace

MountSpec resolve_mount(const MountSpec& mount, const MountRoots& roots) {
  auto resolved = real_path(mount.host_path);
  if (!resolved) refuse(mount, std::string(": ") + std::strerror(errno));
  struct stat info {};
  if (::stat(resolved->c_str(), &info) < 0) refuse(mount, std::string(": ") + std::strerror(errno));
  check_shareable(mount, info);
  if (roots && !root_of(*resolved, *roots)) {
    std::string listed;
    for (const auto& root : *roots) listed += (listed.empty() ? "" : ", ") + real_path(root).value_or(root);
    refuse(mount, roots->empty() ? "cannot be mounted: this airlockd allows no mounts (its operator can "
                                   "allow directories with --mount-root DIR)"
                                 : "is outside this airlockd's mount roots (" + listed + ")");
  }
  return {*resolved, mount.guest_path};
}

UniqueFd open_mount(const MountSpec& resolved, const MountRoots& roots) {
  std::string base = "/";
  if (roots) {
    auto root = root_of(resolved.host_path, *roots);
    if (!root) refuse(resolved, "is no longer inside a mount root");
    base = *root;
  }
  UniqueFd base_fd(::open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!base_fd) refuse(resolved, "cannot be opened: mount root " + base + ": " + std::strerror(errno));
  std::string relative = resolved.host_path.substr(base.size());
  while (!relative.empty() && relative.front() == '/') relative.erase(0, 1);
  if (relative.empty()) relative = ".";
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, base_fd.get(), relative.c_str(), &how, sizeof how)));
  if (!fd) {
    if (errno == ELOOP)
      refuse(resolved, "is now a symlink or lies under one: it changed after it was checked");
    if (errno == EXDEV) refuse(resolved, "now leads outside its mount root " + base);
    refuse(resolved, std::string("cannot be opened: ") + std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) < 0)
    refuse(resolved, std::string("cannot be examined: ") + std::strerror(errno));
  check_shareable(resolved, info);
  return fd;
}

std::vector<vmm::SharedDirectory> shared_dirs_of(const std::vector<MountSpec>& mounts,
                                                 const std::vector<UniqueFd>& opened) {
  std::vector<vmm::SharedDirectory> shares;
  for (size_t i = 0; i < mounts.size(); ++i) {
    shares.push_back({mounts[i].host_path, share_tag(i), opened.at(i).get()});
  }
  return shares;
}

std::vector<std::pair<std::string, std::string>> share_mount_points(const std::vector<MountSpec>& mounts) {
  std::vector<std::pair<std::string, std::string>> points;
  for (size_t i = 0; i < mounts.size(); ++i) points.emplace_back(share_tag(i), mounts[i].guest_path);
  return points;
}

}  // namespace airlock::engine

// Layer: QEMU's root directory is a jail holding only what it needs. In its
// private mount namespace the child mounts a small tmpfs on <work dir>/jail,
// attaches into it read-only /usr (QEMU, its libraries and firmware: Debian
// has merged /usr, so /lib and /bin are symlinks into it) and each file of this
// VM at the same absolute path it has on the host (so the paths on QEMU's
// command line and the backing-file names inside qcow2 overlays need no
// rewriting), then pivots into it and detaches the host's tree.
//
// Why mounts and not fds passed to QEMU: QEMU 7.2 reads -kernel, -initrd,
// backing images named inside a qcow2 file and memory-backend-file by path;
// only some of those accept /dev/fdset. Mounting each file keeps one mechanism
// for all of them. The mounts exist only in QEMU's namespace and vanish with
// it: nothing on the host to clean up but the empty mount-point directory.
//
// Why open_tree here and move_mount in the child: a bind mount by path would
// mount whatever the path names at that moment, and a file the engine opened
// and checked cannot be bind-mounted through /proc/self/fd from the child's
// new mount namespace (the kernel refuses a source outside the caller's
// namespace). open_tree(OPEN_TREE_CLONE) on the open file makes a detached
// mount of exactly that file in the parent; the child only attaches it.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <set>

#include "common/error.h"
#include "common/unique_fd.h"
#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

namespace {

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

// Descriptors of the detached mounts are inherited by the child at these numbers.
constexpr int kFirstTreeFd = 100;

struct Bind {
  UniqueFd tree;  // the detached mount (open_tree), held until the jail goes
  int child_fd = -1;
  std::string target;  // inside the jail root
  bool directory = false;
  unsigned long flags = 0;  // applied by the read-only/nosuid remount
  std::string op;           // what enter() reports if this bind fails
};

struct Symlink {
  std::string target;
  std::string path;
};

constexpr unsigned long kReadOnly = MS_RDONLY | MS_NOSUID | MS_NODEV;
constexpr unsigned long kWritable = MS_NOSUID | MS_NODEV | MS_NOEXEC;
constexpr unsigned long kDevice = MS_NOSUID | MS_NOEXEC;

class JailDir final : public Layer {
 public:
  std::string_view name() const override { return "jail_dir"; }

  std::optional<std::string> probe(const std::string& /*cache_dir*/) const override {
    if (::geteuid() != 0) return "mounting into the jail needs root (no user namespace support yet)";
    return std::nullopt;
  }

  void prepare(const JailPlan& plan) override {
    root_ = plan.work_dir + "/jail";
    if (::mkdir(root_.c_str(), 0755) < 0) throw_errno("mkdir", root_);
    made_root_ = true;
    root_op_ = "mount(\"tmpfs\", \"" + root_ + "\")";
    pivot_op_ = "pivot_root(\"" + root_ + "\")";

    std::set<std::string> dirs;
    auto add_parents = [&dirs, this](const std::string& path) {
      for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
        dirs.insert(root_ + path.substr(0, slash));
      }
    };
    // `fd`: the file as opened and checked by the engine; -1: the path (ours, trusted).
    auto add_bind = [&](const std::string& path, bool directory, unsigned long flags, int fd = -1) {
      add_parents(path);
      if (directory) dirs.insert(root_ + path);
      UniqueFd tree(
          fd >= 0 ? ::syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)
                  : ::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
      if (!tree) throw_errno("open_tree", path);
      const int child_fd = kFirstTreeFd + static_cast<int>(binds_.size());
      binds_.push_back(
          {std::move(tree), child_fd, root_ + path, directory, flags, "attach \"" + path + "\" in the jail"});
    };
    add_bind("/usr", true, kReadOnly);
    for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
      struct stat info {};
      if (::lstat(top, &info) < 0) continue;
      if (S_ISLNK(info.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = ::readlink(top, target, sizeof target - 1);
        if (n < 0) throw_errno("readlink", top);
        symlinks_.push_back({std::string(target, static_cast<size_t>(n)), root_ + top});
      } else if (S_ISDIR(info.st_mode)) {
        add_bind(top, true, kReadOnly);
      }
    }
    auto covered = [](const std::string& path) { return path.rfind("/usr/", 0) == 0; };
    for (const auto& file : plan.read_only_files) {
      if (!covered(file)) add_bind(file, false, kReadOnly);
    }
    for (const auto& file : plan.writable_files) add_bind(file.path, false, kWritable, file.fd);
    for (const auto& file : plan.mapped_files) add_bind(file.path, false, kWritable, file.fd);
    // Only the shared directory itself (open_tree without AT_RECURSIVE):
    // nothing beside it, nothing mounted below it.
    for (const auto& dir : plan.read_only_dirs) add_bind(dir.path, true, kReadOnly | MS_NOEXEC, dir.fd);
    for (const auto& device : plan.devices) add_bind(device, false, kDevice);
    if (!plan.scratch_dir.empty()) {
      add_parents(plan.scratch_dir);
      dirs.insert(root_ + plan.scratch_dir);
      scratch_ = root_ + plan.scratch_dir;
      scratch_options_ = "mode=0700,size=64k,nr_inodes=256,uid=" + std::to_string(jail_uid(plan.user)) +
                         ",gid=" + std::to_string(jail_gid(plan.user));
      scratch_op_ = "mount(\"tmpfs\", \"" + plan.scratch_dir + "\")";
    }
    dirs_.assign(dirs.begin(), dirs.end());  // a set sorts parents before children
  }

  std::vector<std::pair<int, int>> inherited_fds() const override {
    std::vector<std::pair<int, int>> fds;
    for (const auto& bind : binds_) fds.emplace_back(bind.child_fd, bind.tree.get());
    return fds;
  }

  ~JailDir() override {
    // The mounts were in QEMU's namespace and died with it; the mount point is empty.
    if (made_root_) ::rmdir(root_.c_str());
  }

  const char* enter() const noexcept override {
    ::umask(022);
    // Nothing we mount may propagate back to the host's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return "mount(\"/\", MS_PRIVATE)";
    if (::mount("tmpfs", root_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m") < 0) {
      return root_op_.c_str();
    }
    for (const auto& dir : dirs_) {
      if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) return root_op_.c_str();
    }
    for (const auto& link : symlinks_) {
      if (::symlink(link.target.c_str(), link.path.c_str()) < 0) return root_op_.c_str();
    }
    for (const auto& bind : binds_) {
      if (!bind.directory) {
        int fd = ::open(bind.target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0) return bind.op.c_str();
        ::close(fd);
      }
      if (::syscall(SYS_move_mount, bind.child_fd, "", AT_FDCWD, bind.target.c_str(),
                    MOVE_MOUNT_F_EMPTY_PATH) < 0 ||
          ::mount(nullptr, bind.target.c_str(), nullptr, MS_REMOUNT | MS_BIND | bind.flags, nullptr) < 0) {
        return bind.op.c_str();
      }
      ::close(bind.child_fd);  // not close-on-exec in the child: QEMU must not inherit it
    }
    if (!scratch_.empty() && ::mount("tmpfs", scratch_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                     scratch_options_.c_str()) < 0) {
      return scratch_op_.c_str();
    }
    // The jail's own skeleton is read-only too.
    if (::mount(nullptr, root_.c_str(), nullptr, MS_REMOUNT | MS_BIND | kReadOnly | MS_NOEXEC, nullptr) < 0) {
      return root_op_.c_str();
    }
    // pivot_root(".", ".") stacks the old root on the new one; detaching it
    // leaves the jail as the only tree QEMU can reach.
    if (::chdir(root_.c_str()) < 0 || ::syscall(SYS_pivot_root, ".", ".") < 0 ||
        ::umount2(".", MNT_DETACH) < 0 || ::chdir("/") < 0) {
      return pivot_op_.c_str();
    }
    return nullptr;
  }

 private:
  std::string root_;
  bool made_root_ = false;
  std::string root_op_;
  std::string pivot_op_;
  std::vector<std::string> dirs_;
  std::vector<Symlink> symlinks_;
  std::vector<Bind> binds_;
  std::string scratch_;  // inside the jail root; empty: none
  std::string scratch_options_;
  std::string scratch_op_;
};

}  // namespace

std::unique_ptr<Layer> make_jail_dir() { return std::make_unique<JailDir>(); }

}  // namespace airlock::vmm::jail

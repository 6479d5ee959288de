#include "guest/file_writer.h"

#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "common/error.h"
#include "protocol/guest_path.h"

namespace airlock::guest {

namespace {

// Opens each of parts[0, count) under the root in turn, making the missing
// ones (owned by uid/gid), never following a symlink. Returns the last one.
UniqueFd walk_directories(const std::string& root_dir, const std::string& path,
                          const std::vector<std::string>& parts, size_t count, uid_t uid, gid_t gid) {
  UniqueFd dir(::open(root_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!dir) throw_errno("open", root_dir);
  for (size_t i = 0; i < count; ++i) {
    if (::mkdirat(dir.get(), parts[i].c_str(), 0755) == 0) {
      ::fchownat(dir.get(), parts[i].c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
    } else if (errno != EEXIST) {
      throw_errno("mkdir", path);
    }
    UniqueFd next(::openat(dir.get(), parts[i].c_str(), O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC));
    if (!next) throw_errno("open", path);
    dir = std::move(next);
  }
  return dir;
}

// Opens each of parts[0, count) under the root in turn, never following a
// symlink and making nothing. Returns the last one.
UniqueFd open_directories(const std::string& root_dir, const std::string& path,
                          const std::vector<std::string>& parts, size_t count) {
  UniqueFd dir(::open(root_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!dir) throw_errno("open", root_dir);
  for (size_t i = 0; i < count; ++i) {
    UniqueFd next(::openat(dir.get(), parts[i].c_str(), O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC));
    if (!next) throw_errno("open", path);
    dir = std::move(next);
  }
  return dir;
}

}  // namespace

UniqueFd open_directory_in_root(const std::string& root_dir, const std::string& path) {
  const std::vector<std::string> parts = protocol::split_guest_directory(path);
  return open_directories(root_dir, path, parts, parts.size());
}

void remove_in_root(const std::string& root_dir, const std::string& path) {
  const std::vector<std::string> parts = protocol::split_guest_path(path);
  if (parts.empty()) {
    errno = EPERM;
    throw_errno("remove", path);
  }
  UniqueFd dir = open_directories(root_dir, path, parts, parts.size() - 1);
  struct stat info {};
  if (::fstatat(dir.get(), parts.back().c_str(), &info, AT_SYMLINK_NOFOLLOW) < 0) throw_errno("remove", path);
  if (::unlinkat(dir.get(), parts.back().c_str(), S_ISDIR(info.st_mode) ? AT_REMOVEDIR : 0) < 0) {
    throw_errno("remove", path);
  }
}

ParentDirectory open_parent_in_root(const std::string& root_dir, const std::string& path) {
  const std::vector<std::string> parts = protocol::split_guest_directory(path);
  if (parts.empty()) return {open_directories(root_dir, path, parts, 0), "."};
  return {open_directories(root_dir, path, parts, parts.size() - 1), parts.back()};
}

void make_node_in_root(const std::string& root_dir, const std::string& path, const std::string& kind,
                       mode_t mode, const std::string& target, uid_t uid, gid_t gid) {
  const std::vector<std::string> parts = protocol::split_guest_directory(path);
  if (parts.empty()) {
    if (kind == "directory") return;  // the root is there
    errno = EEXIST;
    throw_errno("symlink", path);
  }
  UniqueFd dir = walk_directories(root_dir, path, parts, parts.size() - 1, uid, gid);
  const char* name = parts.back().c_str();
  struct stat info {};
  if (kind == "directory") {
    if (::mkdirat(dir.get(), name, 0700) == 0) {
      ::fchownat(dir.get(), name, uid, gid, AT_SYMLINK_NOFOLLOW);
    } else if (errno != EEXIST) {
      throw_errno("mkdir", path);
    }
    UniqueFd made(::openat(dir.get(), name, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC));
    if (!made) {
      if (errno == ENOTDIR || errno == ELOOP) errno = EEXIST;  // a file or symlink has the name
      throw_errno("mkdir", path);
    }
    // A directory that is someone else's (such as /tmp) keeps its mode.
    if (::fchmod(made.get(), mode) < 0 && errno != EPERM) throw_errno("chmod", path);
    return;
  }
  if (::symlinkat(target.c_str(), dir.get(), name) == 0) return;
  if (errno != EEXIST) throw_errno("symlink", path);
  if (::fstatat(dir.get(), name, &info, AT_SYMLINK_NOFOLLOW) < 0) throw_errno("symlink", path);
  if (!S_ISLNK(info.st_mode)) {
    errno = EEXIST;
    throw_errno("symlink (something else has the name)", path);
  }
  if (::unlinkat(dir.get(), name, 0) < 0 || ::symlinkat(target.c_str(), dir.get(), name) < 0) {
    throw_errno("symlink", path);
  }
}

UniqueFd open_file_in_root(const std::string& root_dir, const std::string& path) {
  const std::vector<std::string> parts = protocol::split_guest_path(path);
  if (parts.empty()) throw Error(ErrorCode::invalid_argument, "'" + path + "' is a directory, not a file");
  UniqueFd dir = open_directories(root_dir, path, parts, parts.size() - 1);
  // O_NONBLOCK: a FIFO fails the type check below instead of blocking us on open.
  UniqueFd file(::openat(dir.get(), parts.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!file) throw_errno("open", path);
  struct stat info {};
  if (::fstat(file.get(), &info) < 0) throw_errno("fstat", path);
  if (!S_ISREG(info.st_mode)) {
    errno = S_ISDIR(info.st_mode) ? EISDIR : EINVAL;
    throw_errno("open", path);
  }
  return file;
}

FilesystemIdentity::FilesystemIdentity(uid_t uid, gid_t gid) {
  ::setfsgid(gid);
  ::setfsuid(uid);
}

FilesystemIdentity::~FilesystemIdentity() {
  ::setfsuid(0);
  ::setfsgid(0);
}

std::string error_kind(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR: return "not_found";
    case EACCES:
    case EPERM:
    case EROFS: return "permission_denied";
    case EISDIR:
    case ELOOP:
    case EINVAL:
    case ENXIO: return "not_a_file";
    case EEXIST:
    case ENOTEMPTY: return "exists";
    case ENOSPC:
    case EDQUOT: return "no_space";
    case EFBIG: return "too_large";
    default: return "invalid";
  }
}

UniqueFd make_directory_in_root(const std::string& root_dir, const std::string& path) {
  const std::vector<std::string> parts = protocol::split_guest_path(path);
  return walk_directories(root_dir, path, parts, parts.size(), 0, 0);
}

PendingFile PendingFile::create(const std::string& root_dir, const std::string& path, mode_t mode, uid_t uid,
                                gid_t gid) {
  const std::vector<std::string> parts = protocol::split_guest_path(path);
  PendingFile pending;
  pending.path_ = path;
  pending.name_ = parts.back();
  pending.dir_ = walk_directories(root_dir, path, parts, parts.size() - 1, uid, gid);
  struct stat info {};
  if (::fstatat(pending.dir_.get(), pending.name_.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) {
    // What an earlier program planted there is refused, not replaced.
    if (S_ISLNK(info.st_mode) || !S_ISREG(info.st_mode) || info.st_nlink != 1) {
      errno = S_ISLNK(info.st_mode) ? ELOOP : S_ISDIR(info.st_mode) ? EISDIR : EINVAL;
      throw_errno("open (not a plain file with one link)", path);
    }
  }
  unsigned char random[8];
  if (::getrandom(random, sizeof random, 0) != sizeof random) throw_errno("getrandom");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string temporary = ".airlock-upload-";
  for (unsigned char byte : random) temporary += {kHex[byte >> 4], kHex[byte & 15]};
  pending.file_.reset(::openat(pending.dir_.get(), temporary.c_str(),
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!pending.file_) throw_errno("open", path);
  pending.temporary_ = std::move(temporary);  // from here on, removed unless committed
  if (::fchown(pending.file_.get(), uid, gid) < 0 || ::fchmod(pending.file_.get(), mode) < 0) {
    const int err = errno;
    ::unlinkat(pending.dir_.get(), pending.temporary_.c_str(), 0);
    pending.done_ = true;
    errno = err;
    throw_errno("chmod", path);
  }
  return pending;
}

void PendingFile::commit() {
  file_.reset();
  if (::renameat(dir_.get(), temporary_.c_str(), dir_.get(), name_.c_str()) < 0) throw_errno("rename", path_);
  done_ = true;
}

PendingFile::~PendingFile() {
  if (done_ || !dir_ || temporary_.empty()) return;
  // Often run while an error unwinds: the errno that says what failed is kept.
  const int err = errno;
  ::unlinkat(dir_.get(), temporary_.c_str(), 0);
  errno = err;
}

}  // namespace airlock::guest

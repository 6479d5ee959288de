#include "guest/file_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "common/error.h"

namespace airlock::guest {

std::vector<std::string> split_guest_path(const std::string& path) {
  if (path.find('\0') != std::string::npos) {
    throw Error(ErrorCode::invalid_argument, "file path contains a NUL byte");
  }
  if (path.empty() || path[0] != '/') {
    throw Error(ErrorCode::invalid_argument, "file path '" + path + "' is not absolute");
  }
  if (path.size() > 4096) throw Error(ErrorCode::invalid_argument, "file path is longer than 4096 bytes");
  std::vector<std::string> parts;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(pos, end - pos);
    if (part == "..") {
      throw Error(ErrorCode::invalid_argument, "file path '" + path + "' contains '..'");
    }
    if (!part.empty() && part != ".") parts.push_back(part);
    pos = end + 1;
  }
  if (parts.empty()) throw Error(ErrorCode::invalid_argument, "file path '" + path + "' names no file");
  return parts;
}

UniqueFd create_file_in_root(const std::string& root_dir, const std::string& path, mode_t mode, uid_t uid,
                             gid_t gid) {
  const std::vector<std::string> parts = split_guest_path(path);

  UniqueFd dir(::open(root_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!dir) throw_errno("open", root_dir);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (::mkdirat(dir.get(), parts[i].c_str(), 0755) == 0) {
      ::fchownat(dir.get(), parts[i].c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
    } else if (errno != EEXIST) {
      throw_errno("mkdir", path);
    }
    UniqueFd next(::openat(dir.get(), parts[i].c_str(), O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC));
    if (!next) throw_errno("open", path);
    dir = std::move(next);
  }
  // Not O_TRUNC: what the name points at is checked before anything is cut.
  // O_NONBLOCK: a FIFO planted there fails at once instead of blocking us.
  UniqueFd file(::openat(dir.get(), parts.back().c_str(),
                         O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode));
  if (!file) throw_errno("open", path);
  struct stat info {};
  if (::fstat(file.get(), &info) < 0) throw_errno("fstat", path);
  // A hard link planted by an earlier program would let us truncate its target.
  if (!S_ISREG(info.st_mode) || info.st_nlink != 1) {
    throw Error(ErrorCode::invalid_argument, "file path '" + path + "' is not a plain file");
  }
  if (::ftruncate(file.get(), 0) < 0) throw_errno("ftruncate", path);
  if (::fchown(file.get(), uid, gid) < 0) throw_errno("fchown", path);
  if (::fchmod(file.get(), mode) < 0) throw_errno("fchmod", path);
  return file;
}

}  // namespace airlock::guest

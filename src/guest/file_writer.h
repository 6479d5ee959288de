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

// A file written beside `path` (same directory, a temporary name) and put
// in its place by commit(): until then, and if it never is (a cancelled
// upload, a full disk), `path` is as it was and nothing is left behind.
// Owned by uid/gid, missing parent directories made; no component may be a
// symlink or "..", so a program that ran earlier in the same VM cannot
// redirect the write; refused where `path` is a symlink, a FIFO, a device, a
// directory or a file with more than one link. commit() runs under the caller's file system identity: a
// rename the sandbox user may not make (a sticky directory) fails.
class PendingFile {
 public:
  static PendingFile create(const std::string& root_dir, const std::string& path, mode_t mode, uid_t uid,
                            gid_t gid);
  PendingFile(PendingFile&&) = default;
  PendingFile& operator=(PendingFile&&) = delete;
  ~PendingFile();
  int fd() const { return file_.get(); }
  void commit();

 private:
  PendingFile() = default;
  std::string path_;
  std::string name_;
  std::string temporary_;
  UniqueFd dir_;
  UniqueFd file_;
  bool done_ = false;
};

// Opens the plain file `path` inside the root for reading, never following a
// symlink on the way; a FIFO, device or directory is refused.
UniqueFd open_file_in_root(const std::string& root_dir, const std::string& path);

// Opens the directory `path` inside the root, never following a symlink.
UniqueFd open_directory_in_root(const std::string& root_dir, const std::string& path);

// Removes the file, symlink or empty directory `path` inside the root (the
// name itself: a symlink is removed, never followed), walking there without
// following any symlink. errno ENOTEMPTY for a directory with entries.
void remove_in_root(const std::string& root_dir, const std::string& path);

// Makes the directory (kind "directory") or symlink (kind "symlink", to
// `target`, never followed by us) `path` inside the root, its missing
// parents owned by uid/gid, walking there without following any symlink.
// An existing directory is kept and given the mode where its owner may;
// an existing symlink is replaced; anything else there fails with EEXIST.
void make_node_in_root(const std::string& root_dir, const std::string& path, const std::string& kind,
                       mode_t mode, const std::string& target, uid_t uid, gid_t gid);

// The directory that holds `path` inside the root (the root itself for
// "/"), opened without following a symlink, and the path's last component
// ("." for the root).
struct ParentDirectory {
  UniqueFd dir;
  std::string name;
};
ParentDirectory open_parent_in_root(const std::string& root_dir, const std::string& path);

// While it lives, file system permission checks are made as uid/gid
// (setfsuid): the kernel, not our code, decides what the sandbox user may
// read and write, and what it creates is the user's. The agent is single
// threaded, so nothing else runs with this identity.
class FilesystemIdentity {
 public:
  FilesystemIdentity(uid_t uid, gid_t gid);
  ~FilesystemIdentity();
  FilesystemIdentity(const FilesystemIdentity&) = delete;
  FilesystemIdentity& operator=(const FilesystemIdentity&) = delete;
};

// What kind of failure an errno is, in the protocol's words (ErrorReport::kind).
std::string error_kind(int err);

}  // namespace airlock::guest

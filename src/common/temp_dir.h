#pragma once

#include <string>
#include <system_error>

#include "common/unique_fd.h"

namespace airlock {

// A private directory that is removed with everything in it when the owner
// goes away. While it lives it holds an flock on `<dir>/.lock`, so a later
// process can tell a directory whose owner died (SIGKILL, power loss) from one
// still in use, and reap it: see reap_stale_dirs.
class TempDir {
 public:
  // Creates `<parent>/<prefix>XXXXXX` with mode 0700 (parent is created too).
  static TempDir create(const std::string& parent, const std::string& prefix);

  TempDir() = default;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void remove();  // idempotent

 private:
  std::string path_;
  UniqueFd lock_;
};

// Removes every `<parent>/<prefix>*` directory whose lock is not held by a
// live process. Returns how many were removed. Never throws for a directory
// that vanishes concurrently.
int reap_stale_dirs(const std::string& parent, const std::string& prefix);

// fs::remove_all, and where that fails for want of a directory's write bit
// (never for root), the tree's directories made their owner's again first.
void remove_tree(const std::string& path, std::error_code& ec);

void make_directories(const std::string& path, int mode = 0700);

}  // namespace airlock

#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "common/unique_fd.h"

namespace airlock::cli {

// Local directories as the tar streams airlockd takes and gives for
// `airlock cp` (libarchive on both ends).

// Writes a tar stream (pax) of the local directory `directory` to `send`:
// "./" and everything under it as "./name", symlinks as symlinks (never
// followed). Sockets, FIFOs and devices are left out, each named on
// stderr. Stops early when `send` returns false.
void pack_local_directory(const std::string& directory, const std::function<bool(std::string_view)>& send);

// Extracts a tar stream, fed to it piece by piece, into the directory
// `into`, which it makes and which must not exist. Only directories, plain
// files and symlinks; no name that is absolute or has "..", nothing written
// through a symlink, no owners set. The work is done on a thread of its
// own reading a socket pair, so the feeder never waits on more than the
// socket's buffer.
class LocalExtraction {
 public:
  explicit LocalExtraction(std::string into);
  ~LocalExtraction();
  LocalExtraction(const LocalExtraction&) = delete;
  LocalExtraction& operator=(const LocalExtraction&) = delete;

  // False once extraction has failed (finish says why).
  bool feed(std::string_view data);
  // Waits for the end; throws Error naming what failed.
  void finish();
  // The name of the archive's only entry when it held a single entry that
  // is not a directory ("" otherwise).
  const std::string& single_entry() const { return single_entry_; }

 private:
  void extract();
  std::string into_;
  UniqueFd feeder_;
  UniqueFd reader_;
  std::thread worker_;
  std::string failure_;
  std::string single_entry_;
};

}  // namespace airlock::cli

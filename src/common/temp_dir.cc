#include "common/temp_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/error.h"

namespace airlock {

namespace fs = std::filesystem;

void make_directories(const std::string& path, int mode) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), static_cast<mode_t>(mode)) < 0 && errno != EEXIST) {
      throw_errno("mkdir", partial);
    }
  }
}

TempDir TempDir::create(const std::string& parent, const std::string& prefix) {
  make_directories(parent);
  std::string pattern = parent + "/" + prefix + "XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp", pattern);
  TempDir dir;
  dir.path_ = pattern;
  std::string lock_path = dir.file(".lock");
  dir.lock_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!dir.lock_) throw_errno("open", lock_path);
  if (::flock(dir.lock_.get(), LOCK_EX) < 0) throw_errno("flock", lock_path);
  return dir;
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, {})), lock_(std::move(other.lock_)) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
    lock_ = std::move(other.lock_);
  }
  return *this;
}

TempDir::~TempDir() { remove(); }

void remove_tree(const std::string& path, std::error_code& ec) {
  fs::remove_all(path, ec);
  if (!ec) return;
  // Without root, a directory without its owner's write bit (a layer's
  // read-only directory, say) keeps what is in it: open them up, retry.
  ec.clear();
  ::chmod(path.c_str(), 0700);
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code type_error;
    if (it->is_directory(type_error) && !it->is_symlink(type_error)) ::chmod(it->path().c_str(), 0700);
  }
  ec.clear();
  fs::remove_all(path, ec);
}

void TempDir::remove() {
  if (path_.empty()) return;
  std::error_code ignored;
  remove_tree(path_, ignored);
  path_.clear();
  lock_.reset();
}

int reap_stale_dirs(const std::string& parent, const std::string& prefix) {
  std::error_code ec;
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !entry.is_directory(ec)) continue;
    const std::string lock_path = entry.path().string() + "/.lock";
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!lock) {
      // No lock file yet: either being created right now or left half-made.
      // Only a directory older than a minute is treated as abandoned.
      auto age = fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), ec);
      if (ec || age < std::chrono::minutes(1)) continue;
    } else if (::flock(lock.get(), LOCK_EX | LOCK_NB) < 0) {
      continue;  // its owner is alive
    }
    remove_tree(entry.path().string(), ec);
    if (!ec) ++removed;
  }
  return removed;
}

}  // namespace airlock

#include "engine/template_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"

namespace airlock::engine {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMemoryDirRecord = "/.memory-dir";

std::string memory_file_name(const std::string& name) { return name + ".ram"; }
std::string building_memory_name(const std::string& name) { return name + ".ram.tmp"; }

// The names of a directory's entries (none if it cannot be read).
std::vector<std::string> entries_of(int dir_fd) {
  std::vector<std::string> names;
  int listing = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing < 0) return names;
  DIR* dir = ::fdopendir(listing);
  if (!dir) {
    ::close(listing);
    return names;
  }
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  return names;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string stable_hash(const std::string& text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

TemplateStore::TemplateStore(std::string root, std::string memory_base, uid_t memory_owner, Limits limits)
    : root_(std::move(root)), memory_owner_(memory_owner), limits_(limits) {
  make_directories(root_);
  UniqueFd held = lock_store();
  open_memory_dir(memory_base);
  remove_orphaned_memory(memory_base);
  evict("");
}

void TemplateStore::open_memory_dir(const std::string& memory_base) {
  // The directory recorded by an earlier process is used again only if it is
  // still ours and private; after a reboot it is gone, and a name planted in
  // its place (a symlink, another user's directory) is never trusted.
  std::string recorded;
  try {
    recorded = read_file(root_ + kMemoryDirRecord, 4096);
  } catch (const Error&) {
  }
  if (recorded.rfind(memory_base + "/airlock-", 0) == 0 &&
      recorded.find('/', memory_base.size() + 1) == std::string::npos) {
    UniqueFd fd(::open(recorded.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat info {};
    if (fd && ::fstat(fd.get(), &info) == 0 && info.st_uid == ::geteuid() && (info.st_mode & 07777) == 0700) {
      memory_dir_ = recorded;
      memory_dir_fd_ = std::move(fd);
      return;
    }
  }
  std::string pattern = memory_base + "/airlock-" + std::to_string(::geteuid()) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp", pattern);
  memory_dir_fd_.reset(::open(pattern.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!memory_dir_fd_) throw_errno("open", pattern);
  memory_dir_ = pattern;
  const std::string record = root_ + kMemoryDirRecord;
  write_file(record + ".tmp", memory_dir_, 0600);
  if (::rename((record + ".tmp").c_str(), record.c_str()) < 0) throw_errno("rename", record);
}

void TemplateStore::remove_orphaned_memory(const std::string& memory_base) {
  // RAM is the host's memory: a file no template will map again is freed now.
  for (const auto& file : entries_of(memory_dir_fd_.get())) {
    std::string name;
    if (ends_with(file, ".ram.tmp")) {
      name = file.substr(0, file.size() - 8);
      // A build in progress holds its template's lock.
      UniqueFd building;
      try {
        building = lock_template(name, std::chrono::seconds(0));
      } catch (const Error&) {
        continue;
      }
    } else if (ends_with(file, ".ram")) {
      name = file.substr(0, file.size() - 4);
      std::error_code ec;
      if (fs::is_regular_file(root_ + "/" + name + "/complete", ec)) continue;
    }
    ::unlinkat(memory_dir_fd_.get(), file.c_str(), 0);
  }
  // Before RAM files had a directory of their own they lay in /dev/shm itself,
  // under "airlock-<uid>-<hash of the store>-"; none is used any more.
  const std::string legacy =
      "airlock-" + std::to_string(::geteuid()) + "-" + stable_hash(root_).substr(0, 8) + "-";
  UniqueFd base(::open(memory_base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!base) return;
  for (const auto& file : entries_of(base.get())) {
    struct stat info {};
    if (file.rfind(legacy, 0) == 0 && ::fstatat(base.get(), file.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(info.st_mode)) {
      ::unlinkat(base.get(), file.c_str(), 0);
    }
  }
}

TemplatePaths TemplateStore::paths_for(const std::string& dir, const std::string& name) const {
  return {dir, dir + "/state", dir + "/disk.qcow2", memory_dir_ + "/" + memory_file_name(name)};
}

UniqueFd TemplateStore::lock_store() const {
  const std::string path = root_ + "/.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) throw_errno("open", path);
  if (::flock(fd.get(), LOCK_EX) < 0) throw_errno("flock", path);
  return fd;
}

UniqueFd TemplateStore::lock_template(const std::string& name, std::chrono::seconds wait) const {
  const std::string path = root_ + "/.lock-" + name;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) throw_errno("open", path);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK) throw_errno("flock", path);
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(ErrorCode::unavailable, "template " + name + " is being built by another process (waited " +
                                              std::to_string(wait.count()) + " s for " + path + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fd;
}

std::optional<std::string> TemplateStore::memory_file_problem(const struct stat& info) const {
  if (!S_ISREG(info.st_mode)) return "is not a regular file";
  if (info.st_nlink != 1) return "has " + std::to_string(info.st_nlink) + " links (expected 1)";
  if (info.st_uid != memory_owner_) {
    return "belongs to uid " + std::to_string(info.st_uid) + " (expected " + std::to_string(memory_owner_) +
           ")";
  }
  if ((info.st_mode & 07777) != 0600)
    return "has mode " + std::to_string(info.st_mode & 07777) + " (expected 0600)";
  return std::nullopt;
}

std::optional<TemplatePaths> TemplateStore::find(const std::string& name) const {
  TemplatePaths paths = paths_for(root_ + "/" + name, name);
  std::error_code ec;
  for (const auto& file : {paths.state, paths.disk, paths.dir + "/complete"}) {
    if (!fs::is_regular_file(fs::symlink_status(file, ec))) return std::nullopt;
  }
  if (fs::file_size(paths.state, ec) == 0 || ec) return std::nullopt;
  struct stat info {};
  if (::fstatat(memory_dir_fd_.get(), memory_file_name(name).c_str(), &info, AT_SYMLINK_NOFOLLOW) < 0 ||
      memory_file_problem(info)) {
    return std::nullopt;
  }
  return paths;
}

UniqueFd TemplateStore::open_memory(const std::string& name) const {
  const std::string path = paths_for(root_ + "/" + name, name).memory;
  UniqueFd fd(::openat(memory_dir_fd_.get(), memory_file_name(name).c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  struct stat info {};
  if (::fstat(fd.get(), &info) < 0) throw_errno("fstat", path);
  if (auto problem = memory_file_problem(info)) {
    throw Error(ErrorCode::vm, "template RAM file " + path + " " + *problem);
  }
  // Evictions take this lock exclusively, and skip a template they cannot get.
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) < 0) throw_errno("flock", path);
  // Least recently used is judged by this mark (the RAM file's own times are
  // left alone: reading it through a mapping does not touch them).
  ::utimensat(AT_FDCWD, (root_ + "/" + name + "/complete").c_str(), nullptr, 0);
  return fd;
}

bool TemplateStore::remove_if_unused(const std::string& name) {
  UniqueFd memory(::openat(memory_dir_fd_.get(), memory_file_name(name).c_str(),
                           O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (memory && ::flock(memory.get(), LOCK_EX | LOCK_NB) < 0) return false;  // a VM maps it
  ::unlinkat(memory_dir_fd_.get(), memory_file_name(name).c_str(), 0);
  std::error_code ec;
  fs::remove_all(root_ + "/" + name, ec);
  ++evictions_;
  return true;
}

namespace {

struct Resident {
  std::string name;
  uint64_t bytes;
  fs::file_time_type used;
};

}  // namespace

void TemplateStore::evict(const std::string& keep) {
  std::vector<Resident> residents;
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name[0] == '.' || !entry.is_directory(ec)) continue;
    struct stat info {};
    if (::fstatat(memory_dir_fd_.get(), memory_file_name(name).c_str(), &info, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    const auto used = fs::last_write_time(entry.path() / "complete", ec);
    if (ec) continue;
    residents.push_back({name, static_cast<uint64_t>(info.st_blocks) * 512, used});
    total += residents.back().bytes;
  }
  std::sort(residents.begin(), residents.end(),
            [](const Resident& a, const Resident& b) { return a.used < b.used; });
  const auto stale = fs::file_time_type::clock::now() - limits_.max_unused;
  for (const auto& resident : residents) {
    const bool over_budget = limits_.memory_budget_bytes > 0 && total > limits_.memory_budget_bytes;
    if (resident.name == keep || (!over_budget && resident.used > stale)) continue;
    if (remove_if_unused(resident.name)) total -= resident.bytes;
  }
}

TemplateStore::Stats TemplateStore::stats() const {
  Stats stats;
  stats.memory_budget_bytes = limits_.memory_budget_bytes;
  stats.evictions = evictions_;
  for (const auto& file : entries_of(memory_dir_fd_.get())) {
    struct stat info {};
    if (!ends_with(file, ".ram") ||
        ::fstatat(memory_dir_fd_.get(), file.c_str(), &info, AT_SYMLINK_NOFOLLOW) < 0) {
      continue;
    }
    ++stats.templates;
    stats.memory_bytes += static_cast<uint64_t>(info.st_blocks) * 512;
  }
  return stats;
}

TemplatePaths TemplateStore::create(const std::string& name,
                                    const std::function<void(const TemplatePaths&, int memory_fd)>& build,
                                    std::chrono::seconds wait) {
  UniqueFd held = lock_template(name, wait);
  if (auto existing = find(name)) return *existing;

  // A half-made directory of a build that died is reaped by its free lock.
  reap_stale_dirs(root_, ".tmp-");
  const std::string building_name = building_memory_name(name);
  const int dir = memory_dir_fd_.get();
  ::unlinkat(dir, building_name.c_str(), 0);  // left by a build of this template that died
  TempDir work = TempDir::create(root_, ".tmp-");
  TemplatePaths building = paths_for(work.path(), name);
  building.memory = memory_dir_ + "/" + building_name;
  {
    UniqueFd memory(
        ::openat(dir, building_name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!memory) throw_errno("create", building.memory);
    try {
      build(building, memory.get());
    } catch (...) {
      ::unlinkat(dir, building_name.c_str(), 0);
      throw;
    }
  }
  UniqueFd store = lock_store();
  // Drop older templates of this profile: a new hash means their inputs
  // changed. Names are "<profile>-<hash>"; only the exact profile matches.
  auto profile_of = [](const std::string& template_name) {
    return template_name.substr(0, template_name.rfind('-') + 1);
  };
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string other = entry.path().filename().string();
    if (other != name && entry.is_directory(ec) && other[0] != '.' && profile_of(other) == profile_of(name)) {
      ::unlinkat(dir, memory_file_name(other).c_str(), 0);
      fs::remove_all(entry.path(), ec);
    }
  }
  TemplatePaths final_paths = paths_for(root_ + "/" + name, name);
  if (::renameat(dir, building_name.c_str(), dir, memory_file_name(name).c_str()) < 0) {
    ::unlinkat(dir, building_name.c_str(), 0);
    throw_errno("rename", final_paths.memory);
  }
  write_file(work.file("complete"), name + "\n");
  fs::remove_all(final_paths.dir, ec);
  if (::rename(work.path().c_str(), final_paths.dir.c_str()) < 0) throw_errno("rename", final_paths.dir);
  // Host RAM is the scarce part: a new template makes room by evicting old ones.
  evict(name);
  return final_paths;
}

void TemplateStore::discard(const std::string& name) {
  UniqueFd held = lock_store();
  std::error_code ec;
  ::unlinkat(memory_dir_fd_.get(), memory_file_name(name).c_str(), 0);
  fs::remove_all(root_ + "/" + name, ec);
}

void TemplateStore::discard_all() {
  UniqueFd held = lock_store();
  std::error_code ec;
  for (const auto& file : entries_of(memory_dir_fd_.get())) ::unlinkat(memory_dir_fd_.get(), file.c_str(), 0);
  ::rmdir(memory_dir_.c_str());
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    if (entry.path().filename() != ".lock") fs::remove_all(entry.path(), ec);
  }
}

}  // namespace airlock::engine

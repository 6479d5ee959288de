#include "engine/template_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"

namespace airlock::engine {

namespace fs = std::filesystem;

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

TemplateStore::TemplateStore(std::string root, std::string memory_dir)
    : root_(std::move(root)), memory_dir_(std::move(memory_dir)) {}

TemplatePaths TemplateStore::paths_for(const std::string& dir, const std::string& name) const {
  return {dir, dir + "/state", dir + "/disk.qcow2", memory_dir_ + "/" + memory_prefix() + name + ".ram"};
}

std::string TemplateStore::memory_prefix() const {
  // RAM files of different caches (users, test runs) share one tmpfs.
  return "airlock-" + std::to_string(::getuid()) + "-" + stable_hash(root_).substr(0, 8) + "-";
}

UniqueFd TemplateStore::lock() const {
  make_directories(root_);
  const std::string path = root_ + "/.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) throw_errno("open", path);
  if (::flock(fd.get(), LOCK_EX) < 0) throw_errno("flock", path);
  return fd;
}

std::optional<TemplatePaths> TemplateStore::find(const std::string& name) const {
  TemplatePaths paths = paths_for(root_ + "/" + name, name);
  std::error_code ec;
  for (const auto& file : {paths.state, paths.disk, paths.memory, paths.dir + "/complete"}) {
    if (!fs::is_regular_file(file, ec)) return std::nullopt;
  }
  if (fs::file_size(paths.state, ec) == 0 || ec) return std::nullopt;
  return paths;
}

TemplatePaths TemplateStore::create(const std::string& name,
                                    const std::function<void(const TemplatePaths&)>& build) {
  UniqueFd held = lock();
  if (auto existing = find(name)) return *existing;

  std::error_code ec;
  // Under the lock no other build is in progress: anything half-made is debris.
  reap_stale_dirs(root_, ".tmp-");
  const std::string ram_prefix = memory_prefix();
  for (const auto& entry : fs::directory_iterator(memory_dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(ram_prefix, 0) == 0 && file.find(".ram.tmp") != std::string::npos) {
      fs::remove(entry.path(), ec);
    }
  }

  TempDir work = TempDir::create(root_, ".tmp-");
  TemplatePaths building = paths_for(work.path(), name);
  building.memory += ".tmp";
  try {
    build(building);
  } catch (...) {
    fs::remove(building.memory, ec);
    throw;
  }
  // Drop older templates of this profile: a new hash means their inputs
  // changed. Names are "<profile>-<hash>"; only the exact profile matches.
  auto profile_of = [](const std::string& template_name) {
    return template_name.substr(0, template_name.rfind('-') + 1);
  };
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string other = entry.path().filename().string();
    if (other != name && profile_of(other) == profile_of(name)) {
      fs::remove(paths_for(entry.path().string(), other).memory, ec);
      fs::remove_all(entry.path(), ec);
    }
  }
  TemplatePaths final_paths = paths_for(root_ + "/" + name, name);
  if (::rename(building.memory.c_str(), final_paths.memory.c_str()) < 0) {
    fs::remove(building.memory, ec);
    throw_errno("rename", final_paths.memory);
  }
  write_file(work.file("complete"), name + "\n");
  fs::remove_all(final_paths.dir, ec);
  if (::rename(work.path().c_str(), final_paths.dir.c_str()) < 0) throw_errno("rename", final_paths.dir);
  return final_paths;
}

void TemplateStore::discard(const std::string& name) {
  UniqueFd held = lock();
  std::error_code ec;
  TemplatePaths paths = paths_for(root_ + "/" + name, name);
  fs::remove(paths.memory, ec);
  fs::remove_all(paths.dir, ec);
}

void TemplateStore::discard_all() {
  UniqueFd held = lock();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(memory_dir_, ec)) {
    if (entry.path().filename().string().rfind(memory_prefix(), 0) == 0) fs::remove(entry.path(), ec);
  }
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    if (entry.path().filename() != ".lock") fs::remove_all(entry.path(), ec);
  }
}

}  // namespace airlock::engine

#include "engine/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/temp_dir.h"

namespace airlock::engine {

namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

std::string default_cache_dir() {
  if (auto dir = env_or_empty("AIRLOCK_CACHE_DIR"); !dir.empty()) return dir;
  if (auto dir = env_or_empty("XDG_CACHE_HOME"); !dir.empty()) return dir + "/airlock";
  if (auto home = env_or_empty("HOME"); !home.empty()) return home + "/.cache/airlock";
  return "/tmp/airlock-cache-" + std::to_string(::getuid());
}

std::string imported_images_dir(const std::string& cache_dir) { return cache_dir + "/imported-images"; }

std::string default_runtime_dir() {
  if (auto dir = env_or_empty("AIRLOCK_RUNTIME_DIR"); !dir.empty()) return dir;
  if (auto dir = env_or_empty("XDG_RUNTIME_DIR"); !dir.empty()) return dir + "/airlock";
  // /tmp is shared: the directory must be ours alone, not one planted for us.
  std::string dir = "/tmp/airlock-" + std::to_string(::getuid());
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) throw_errno("mkdir", dir);
  struct stat info {};
  if (::lstat(dir.c_str(), &info) < 0) throw_errno("lstat", dir);
  if (!S_ISDIR(info.st_mode) || info.st_uid != ::getuid() || (info.st_mode & 077) != 0) {
    throw Error(ErrorCode::unavailable,
                dir + " is not a private directory owned by this user; set AIRLOCK_RUNTIME_DIR");
  }
  return dir;
}

std::string find_manifest(const std::string& explicit_path) {
  namespace fs = std::filesystem;
  std::string tried;
  auto candidate = [&tried](const std::string& path) {
    if (!tried.empty()) tried += ", ";
    tried += path;
    std::error_code ec;
    if (fs::exists(path, ec) && !fs::is_regular_file(path, ec)) {
      throw Error(ErrorCode::invalid_argument, "image manifest " + path + " is not a regular file");
    }
    return fs::is_regular_file(path, ec);
  };
  if (!explicit_path.empty()) {
    if (candidate(explicit_path)) return explicit_path;
    throw Error(ErrorCode::not_found, "image manifest " + explicit_path + " does not exist");
  }
  if (auto path = env_or_empty("AIRLOCK_IMAGES"); !path.empty()) {
    if (candidate(path)) return path;
    throw Error(ErrorCode::not_found, "image manifest " + path + " (from AIRLOCK_IMAGES) does not exist");
  }
  const std::string beside = (fs::path(executable_dir()).parent_path() / "images" / "manifest.json").string();
  if (candidate(beside)) return beside;
  throw Error(ErrorCode::not_found, "no guest images found (looked for " + tried +
                                        "); build them with scripts/setup or images/build, or pass --images");
}

std::string executable_dir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error(ErrorCode::not_found, "cannot find this executable (/proc/self/exe): " + ec.message());
  return exe.parent_path().string();
}

std::string find_netstack_program() {
  const std::string beside = executable_dir() + "/airlock-netstack";
  if (::access(beside.c_str(), X_OK) != 0) {
    throw Error(ErrorCode::not_found, "the network stack's program " + beside +
                                          " is missing (it is built beside airlock and airlockd)");
  }
  return beside;
}

}  // namespace airlock::engine

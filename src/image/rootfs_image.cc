#include "image/rootfs_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"

namespace airlock::image {

namespace fs = std::filesystem;

extern const char* const kReseedJs;
extern const char* const kSitecustomizePy;

namespace {

constexpr uint32_t kSandboxUid = 1000;
constexpr uint64_t kFreeMiB = 256;  // room for runs to write, as images/build leaves
constexpr auto kToolTimeout = std::chrono::minutes(10);

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool has_line_with(const std::string& text, const std::string& needle) {
  for (const auto& line : lines_of(text)) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

// `line` appended to the file at `path` in the tree unless a line of it
// already holds `needle` (or the file is made with it).
void add_line(RootTree& tree, const std::string& path, const std::string& needle, const std::string& line) {
  const std::string host = tree.find(path);
  std::string text;
  if (!host.empty() && fs::is_regular_file(host)) text = read_file(host, 16 << 20);
  if (has_line_with(text, needle)) return;
  if (!text.empty() && text.back() != '\n') text += '\n';
  tree.put_file(path, text + line + "\n", {0, 0, 0644});
}

std::string tool(const std::string& name) {
  if (auto found = find_program(name)) return *found;
  for (const char* dir : {"/usr/sbin/", "/sbin/"}) {
    if (::access((dir + name).c_str(), X_OK) == 0) return dir + name;
  }
  throw Error(ErrorCode::unavailable, name + " is not installed (e2fsprogs); it builds imported images");
}

void run_tool(const std::vector<std::string>& argv, const std::string& what) {
  CommandResult result = run_command(argv, {}, kToolTimeout);
  if (result.status.exit_code != 0) {
    throw Error(ErrorCode::io,
                what + " failed (" + result.status.describe() + "): " + result.output.substr(0, 2000));
  }
}

}  // namespace

void prepare_for_airlock(RootTree& tree) {
  for (const char* dir : {"proc", "sys", "dev", "run", "mnt", "etc", "usr/lib"}) {
    if (tree.find(dir).empty()) tree.ensure_directory(dir, {0, 0, 0755});
  }
  for (const char* dir : {"tmp", "var/tmp"}) {
    if (tree.find(dir).empty()) tree.ensure_directory(dir, {0, 0, 01777});
  }
  if (tree.find("root").empty()) tree.ensure_directory("root", {0, 0, 0700});
  tree.ensure_directory("home/sandbox", {kSandboxUid, kSandboxUid, 0755});
  // uid 1000 keeps the name the image gives it (node images call it "node").
  add_line(tree, "etc/passwd", "root:", "root:x:0:0:root:/root:/bin/sh");
  add_line(tree, "etc/passwd", ":x:1000:", "sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh");
  add_line(tree, "etc/group", "root:", "root:x:0:");
  add_line(tree, "etc/group", ":x:1000:", "sandbox:x:1000:");
  add_line(tree, "etc/hosts", "localhost", "127.0.0.1 localhost");
  if (tree.find("etc/hostname").empty()) tree.put_file("etc/hostname", "sandbox\n", {0, 0, 0644});
  if (!tree.find("usr/bin/node").empty()) tree.put_file("usr/lib/airlock/reseed.js", kReseedJs, {0, 0, 0644});
  // Python runs sitecustomize at start; an image's own (Debian's links to
  // an apport hook it does not ship) gives way to ours only when it is a link.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tree.find("usr/lib"), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("python3.", 0) != 0 || !entry.is_directory(ec)) continue;
    const std::string hook = "usr/lib/" + name + "/sitecustomize.py";
    const std::string existing = tree.find(hook);
    if (existing.empty() || fs::is_symlink(entry.path() / "sitecustomize.py", ec)) {
      tree.put_file(hook, kSitecustomizePy, {0, 0, 0644});
    }
  }
}

std::vector<std::string> link_interpreters(
    RootTree& tree, const std::vector<std::pair<std::string, std::string>>& interpreters,
    const std::vector<std::string>& env) {
  std::string path_variable = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& assignment : env) {
    if (assignment.rfind("PATH=", 0) == 0) path_variable = assignment.substr(5);
  }
  std::vector<std::string> dirs;
  for (size_t start = 0; start <= path_variable.size();) {
    const size_t end = std::min(path_variable.find(':', start), path_variable.size());
    if (end > start && path_variable[start] == '/') dirs.push_back(path_variable.substr(start, end - start));
    start = end + 1;
  }
  std::vector<std::string> linked;
  for (const auto& [language, program] : interpreters) {
    if (program.front() != '/' || !tree.find(program.substr(1)).empty()) continue;
    const std::string name = program.substr(program.rfind('/') + 1);
    for (const auto& dir : dirs) {
      const std::string candidate = dir + "/" + name;
      if (candidate == program || !languages_in(tree, {{language, candidate}}).size()) continue;
      tree.put_symlink(program.substr(1), candidate);
      linked.push_back(program + " -> " + candidate);
      break;
    }
  }
  return linked;
}

std::vector<std::string> languages_in(const RootTree& tree,
                                      const std::vector<std::pair<std::string, std::string>>& interpreters) {
  std::vector<std::string> languages;
  for (const auto& [language, program] : interpreters) {
    const std::string host = tree.find(program.front() == '/' ? program.substr(1) : program);
    struct stat st {};
    if (host.empty() || ::stat(host.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // The mode its layer gave it: the staged file is not executable yet (settle_modes).
    const auto it = tree.attributes().find(host.substr(tree.directory().size() + 1));
    if ((it == tree.attributes().end() ? st.st_mode : it->second.mode) & 0111) languages.push_back(language);
  }
  return languages;
}

void build_ext4(const RootTree& tree, const std::string& image_path, const std::string& label) {
  uint64_t bytes = 0;
  uint64_t inodes = 1;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(tree.directory(), ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0) bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    ++inodes;
  }
  if (ec) throw Error(ErrorCode::io, "cannot walk " + tree.directory() + ": " + ec.message());
  // The content, ~10% for ext4's metadata, an inode table, the free room.
  const uint64_t size_mib = (bytes * 11 / 10 + inodes * 256) / (1 << 20) + kFreeMiB + 16;
  {
    UniqueFd fd(::open(image_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) throw_errno("open", image_path);
    if (::ftruncate(fd.get(), static_cast<off_t>(size_mib << 20)) < 0) throw_errno("ftruncate", image_path);
  }
  run_tool({tool("mke2fs"),
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal",
            "-b",
            "4096",
            "-m",
            "0",
            "-L",
            label.substr(0, 16),
            "-N",
            std::to_string(inodes + 16384),
            "-E",
            "root_owner=0:0,lazy_itable_init=0",
            "-d",
            tree.directory(),
            image_path},
           "mke2fs");

  // mke2fs copied the builder's owners, and modes made readable for it
  // (settle_modes): give each file its layer's. Every path the tree has
  // is in its attributes (settle_modes skipped none that resolve).
  std::string script;
  const uint32_t builder_uid = ::geteuid(), builder_gid = ::getegid();
  for (const auto& [path, attributes] : tree.attributes()) {
    struct stat st {};
    if (::lstat((tree.directory() + "/" + path).c_str(), &st) < 0) continue;  // a later layer removed it
    if (path.find_first_of("\"\n\r") != std::string::npos) {
      throw Error(ErrorCode::invalid_argument,
                  "the image has a file name debugfs cannot take: '" + path + "'");
    }
    const std::string quoted = "\"/" + path + "\"";
    if (attributes.uid != builder_uid)
      script += "sif " + quoted + " uid " + std::to_string(attributes.uid) + "\n";
    if (attributes.gid != builder_gid)
      script += "sif " + quoted + " gid " + std::to_string(attributes.gid) + "\n";
    if (!S_ISLNK(st.st_mode) && (st.st_mode & 07777) != attributes.mode) {
      char mode[16];
      std::snprintf(mode, sizeof mode, "0%o", static_cast<unsigned>((st.st_mode & S_IFMT) | attributes.mode));
      script += "sif " + quoted + " mode " + mode + "\n";
    }
  }
  if (!script.empty()) {
    const std::string script_path = image_path + ".debugfs";
    write_file(script_path, script, 0600);
    // Its echo of each command to /dev/null; its complaints to a file, all
    // of them (debugfs exits 0 whatever its commands did), bar its banner.
    const std::string errors_path = image_path + ".debugfs-errors";
    ExitStatus status;
    {
      UniqueFd errors(::open(errors_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!errors) throw_errno("open", errors_path);
      SpawnOptions options;
      options.fds = {{2, errors.get()}};
      ChildProcess debugfs =
          ChildProcess::spawn({tool("debugfs"), "-w", "-f", script_path, image_path}, options);
      status = debugfs.wait_or_kill(kToolTimeout);
    }
    std::string complaints;
    for (const auto& line : lines_of(read_file(errors_path, 64 << 20))) {
      if (!line.empty() && line.rfind("debugfs ", 0) != 0) complaints += line + "\n";
    }
    fs::remove(script_path, ec);
    fs::remove(errors_path, ec);
    if (status.exit_code != 0 || !complaints.empty()) {
      throw Error(ErrorCode::io,
                  "debugfs could not set owners (" + status.describe() + "): " + complaints.substr(0, 2000));
    }
  }
  run_tool({tool("e2fsck"), "-fn", image_path}, "e2fsck of the new image");
}

}  // namespace airlock::image

#include "image/root_tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"

namespace airlock::image {

namespace fs = std::filesystem;

namespace {

using Archive = std::unique_ptr<archive, decltype(&archive_read_free)>;

constexpr int kMaxLinks = 40;           // as the kernel's path walk
constexpr size_t kMaxNameBytes = 4096;  // PATH_MAX: a longer name or link target is refused
constexpr int kMaxResolveSteps = 4096;  // components one name may take to resolve, links included

std::string join(const std::vector<std::string>& parts) {
  std::string path;
  for (const auto& part : parts) path += (path.empty() ? "" : "/") + part;
  return path;
}

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// A layer entry's name as components: "./usr/bin/x" -> usr, bin, x.
// Absolute names and ".." refuse the layer.
std::vector<std::string> entry_parts(const std::string& name, const std::string& label) {
  if (name.size() > kMaxNameBytes) {
    throw Error(ErrorCode::invalid_argument,
                label + " has a name longer than " + std::to_string(kMaxNameBytes) + " bytes (refused)");
  }
  if (name.find('\r') != std::string::npos) {
    throw Error(ErrorCode::invalid_argument, label + " has a name with a carriage return (refused)");
  }
  if (!name.empty() && name.front() == '/') {
    throw Error(ErrorCode::invalid_argument, label + " has an absolute name '" + name + "' (refused)");
  }
  std::vector<std::string> parts;
  for (auto& part : split(name)) {
    if (part == "..") {
      throw Error(ErrorCode::invalid_argument, label + " has a name with '..', '" + name + "' (refused)");
    }
    if (part != ".") parts.push_back(std::move(part));
  }
  return parts;
}

bool lstat_of(const std::string& path, struct stat& st) { return ::lstat(path.c_str(), &st) == 0; }

std::string why(archive* a) {
  const char* text = archive_error_string(a);
  return text ? text : "unreadable archive";
}

}  // namespace

RootTree::RootTree(std::string directory) : directory_(std::move(directory)) {}

std::string RootTree::host_path(const std::vector<std::string>& parts) const {
  return parts.empty() ? directory_ : directory_ + "/" + join(parts);
}

std::vector<std::string> RootTree::resolve(std::vector<std::string> parts, bool follow_last) const {
  std::vector<std::string> resolved;
  std::deque<std::string> todo(parts.begin(), parts.end());
  int links = 0;
  int steps = 0;
  while (!todo.empty()) {
    if (++steps > kMaxResolveSteps) {
      throw Error(ErrorCode::invalid_argument, "'" + join(parts) + "' takes too many steps to resolve");
    }
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    resolved.push_back(part);
    if (todo.empty() && !follow_last) break;
    struct stat st {};
    if (!lstat_of(host_path(resolved), st) || !S_ISLNK(st.st_mode)) continue;
    if (++links > kMaxLinks) {
      throw Error(ErrorCode::invalid_argument, "too many levels of symbolic links in '" + join(parts) + "'");
    }
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    const ssize_t n = ::readlink(host_path(resolved).c_str(), target.data(), target.size());
    if (n < 0) throw_errno("readlink", host_path(resolved));
    target.resize(static_cast<size_t>(n));
    resolved.pop_back();
    if (!target.empty() && target.front() == '/') resolved.clear();
    auto more = split(target);
    todo.insert(todo.begin(), more.begin(), more.end());
  }
  return resolved;
}

std::string RootTree::find(const std::string& path) const {
  const std::string host = host_path(resolve(split(path), true));
  struct stat st {};
  return lstat_of(host, st) ? host : "";
}

void RootTree::make_parents(const std::vector<std::string>& parts, const std::string& label) {
  std::vector<std::string> prefix;
  for (const auto& part : parts) {
    prefix.push_back(part);
    struct stat st {};
    const std::string host = host_path(prefix);
    if (lstat_of(host, st)) {
      if (!S_ISDIR(st.st_mode)) {
        throw Error(ErrorCode::invalid_argument,
                    label + " puts a file under '" + join(prefix) + "', which is not a directory");
      }
      continue;
    }
    if (::mkdir(host.c_str(), 0700) < 0) throw_errno("mkdir", host);
    attributes_[join(prefix)] = Attributes{};
  }
}

bool RootTree::under_real_directories(const std::vector<std::string>& parts) const {
  std::vector<std::string> prefix;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix.push_back(parts[i]);
    struct stat st {};
    if (!lstat_of(host_path(prefix), st) || !S_ISDIR(st.st_mode)) return false;
  }
  return true;
}

void RootTree::remove_entry(const std::vector<std::string>& parts) {
  if (parts.empty()) return;
  // Resolved when the entry was read; a later entry may have made one of its
  // directories a link since, which the host would follow.
  if (!under_real_directories(parts)) return;
  const std::string host = host_path(parts);
  std::error_code ec;
  fs::remove_all(host, ec);
  if (ec) throw Error(ErrorCode::io, "cannot remove " + host + ": " + ec.message());
  const std::string relative = join(parts);
  attributes_.erase(relative);
  for (auto it = attributes_.lower_bound(relative + "/");
       it != attributes_.end() && it->first.compare(0, relative.size() + 1, relative + "/") == 0;) {
    it = attributes_.erase(it);
  }
}

// An opaque directory hides what lower layers put in it: all that this
// layer did not write goes, recursively.
void RootTree::prune_opaque(const std::vector<std::string>& parts, const std::set<std::string>& written) {
  // The directory as it is now: one that a later entry of the layer replaced
  // (by a link, say) is not the opaque directory any more.
  std::vector<std::string> self = parts;
  self.push_back(".");
  if (!under_real_directories(self)) return;
  struct stat st_self {};
  if (!parts.empty() && (!lstat_of(host_path(parts), st_self) || !S_ISDIR(st_self.st_mode))) return;
  std::error_code ec;
  std::vector<std::string> children;
  for (const auto& child : fs::directory_iterator(host_path(parts), ec)) {
    children.push_back(child.path().filename().string());
  }
  for (const auto& name : children) {
    std::vector<std::string> child = parts;
    child.push_back(name);
    const std::string relative = join(child);
    auto below = written.lower_bound(relative + "/");
    const bool holds_written = below != written.end() && below->rfind(relative + "/", 0) == 0;
    struct stat st {};
    const bool is_dir = lstat_of(host_path(child), st) && S_ISDIR(st.st_mode);
    if (is_dir && (holds_written || written.count(relative))) {
      prune_opaque(child, written);
    } else if (!written.count(relative)) {
      remove_entry(child);
    }
  }
}

void RootTree::apply_layer(const std::string& layer_path, const std::string& label,
                           const UnpackLimits& limits, UnpackReport& report) {
  Archive reader(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(reader.get());
  archive_read_support_filter_all(reader.get());
  if (archive_read_open_filename(reader.get(), layer_path.c_str(), 256 * 1024) != ARCHIVE_OK) {
    throw Error(ErrorCode::invalid_argument, label + " is not a tar: " + why(reader.get()));
  }
  std::set<std::string> written;  // what this layer made, for its opaque directories
  std::vector<std::vector<std::string>> opaque;
  for (;;) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(reader.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN) throw Error(ErrorCode::invalid_argument, label + ": " + why(reader.get()));
    if (++report.entries > limits.max_entries) {
      throw Error(ErrorCode::too_large,
                  label + ": the image has more than " + std::to_string(limits.max_entries) + " entries");
    }
    const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    std::vector<std::string> parts = entry_parts(name, label);
    if (parts.empty()) continue;  // the root itself
    const std::string base = parts.back();
    parts.pop_back();
    std::vector<std::string> parent = resolve(parts, true);
    if (base == ".wh..wh..opq") {
      opaque.push_back(parent);
      continue;
    }
    if (base.rfind(".wh..wh.", 0) == 0) continue;  // aufs bookkeeping, not content
    if (base.rfind(".wh.", 0) == 0) {
      const std::string hidden = base.substr(4);
      if (hidden.empty() || hidden == "." || hidden == "..") {
        throw Error(ErrorCode::invalid_argument,
                    label + " has a whiteout of '" + hidden + "', '" + name + "' (refused)");
      }
      parent.push_back(hidden);
      remove_entry(parent);
      continue;
    }
    make_parents(parent, label);
    std::vector<std::string> path = parent;
    path.push_back(base);
    const std::string host = host_path(path);
    const std::string relative = join(path);
    const mode_t type = archive_entry_filetype(entry);
    const char* hardlink = archive_entry_hardlink(entry);
    if (!hardlink && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK)) {
      report.dropped.push_back(label + ": " + (type == AE_IFSOCK ? "socket " : "device node ") + relative +
                               " (dropped)");
      continue;
    }
    struct stat existing {};
    const bool exists = lstat_of(host, existing);
    if (exists && !(type == AE_IFDIR && S_ISDIR(existing.st_mode) && !hardlink)) remove_entry(path);
    written.insert(relative);

    mode_t mode = archive_entry_perm(entry) & 07777;
    if (mode & (S_ISUID | S_ISGID)) {
      report.setid_cleared.push_back(relative);
      mode &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
    }
    Attributes attributes{static_cast<uint32_t>(archive_entry_uid(entry)),
                          static_cast<uint32_t>(archive_entry_gid(entry)), mode};
    if (hardlink) {
      std::vector<std::string> target = entry_parts(hardlink, label);
      if (target.empty())
        throw Error(ErrorCode::invalid_argument, label + ": hard link '" + name + "' to the root");
      const std::string target_base = target.back();
      target.pop_back();
      target = resolve(target, true);
      target.push_back(target_base);
      struct stat st {};
      if (!lstat_of(host_path(target), st) || S_ISDIR(st.st_mode)) {
        throw Error(ErrorCode::invalid_argument, label + ": hard link '" + name + "' to '" + hardlink +
                                                     "', which is not a file of the image");
      }
      if (::link(host_path(target).c_str(), host.c_str()) < 0) throw_errno("link", host);
      auto it = attributes_.find(join(target));
      attributes_[relative] = it != attributes_.end() ? it->second : Attributes{};
      continue;
    }
    switch (type) {
      case AE_IFDIR:
        if (!exists || !S_ISDIR(existing.st_mode)) {
          if (::mkdir(host.c_str(), 0700) < 0) throw_errno("mkdir", host);
        }
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        if (::symlink(target ? target : "", host.c_str()) < 0) throw_errno("symlink", host);
        break;
      }
      case AE_IFIFO:
        if (::mkfifo(host.c_str(), 0600) < 0) throw_errno("mkfifo", host);
        break;
      case AE_IFREG: {
        // Counted as declared: a sparse entry writes few blocks of a huge file.
        const auto declared = static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(entry), 0));
        if (report.bytes + declared > limits.max_bytes) {
          throw Error(ErrorCode::too_large, label + " unpacks past the limit of " +
                                                std::to_string(limits.max_bytes >> 20) + " MiB (at " +
                                                relative + ")");
        }
        uint64_t written_bytes = 0;
        UniqueFd out(::open(host.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) throw_errno("open", host);
        for (;;) {
          const void* block = nullptr;
          size_t size = 0;
          la_int64_t offset = 0;
          const int read = archive_read_data_block(reader.get(), &block, &size, &offset);
          if (read == ARCHIVE_EOF) break;
          if (read < ARCHIVE_WARN) throw Error(ErrorCode::invalid_argument, label + ": " + why(reader.get()));
          written_bytes += size;
          if (written_bytes > declared || static_cast<uint64_t>(offset) + size > declared) {
            throw Error(ErrorCode::invalid_argument, label + ": " + relative + " holds more than its size");
          }
          const char* data = static_cast<const char*>(block);
          while (size > 0) {
            const ssize_t n = ::pwrite(out.get(), data, size, offset);
            if (n < 0) throw_errno("write", host);
            data += n, size -= static_cast<size_t>(n), offset += n;
          }
        }
        report.bytes += declared;
        if (::ftruncate(out.get(), static_cast<off_t>(declared)) < 0) throw_errno("ftruncate", host);
        break;
      }
      default:
        report.dropped.push_back(label + ": " + relative + " of an unknown type (dropped)");
        written.erase(relative);
        continue;
    }
    attributes_[relative] = attributes;
  }
  for (const auto& dir : opaque) prune_opaque(dir, written);
}

void RootTree::ensure_directory(const std::string& path, Attributes attributes) {
  std::vector<std::string> parts = resolve(split(path), true);
  make_parents(parts, "the image");
  attributes_[join(parts)] = attributes;
}

// `path` (relative) resolved inside the root, its parents made and what was
// there removed: the host path a new entry goes at.
std::string RootTree::clear_place(const std::string& path) {
  std::vector<std::string> parts = split(path);
  const std::string base = parts.back();
  parts.pop_back();
  parts = resolve(parts, true);
  make_parents(parts, "the image");
  parts.push_back(base);
  remove_entry(parts);
  return join(parts);
}

void RootTree::put_file(const std::string& path, const std::string& contents, Attributes attributes) {
  const std::string relative = clear_place(path);
  write_file(host_path({relative}), contents, 0600);
  attributes_[relative] = attributes;
}

void RootTree::put_symlink(const std::string& path, const std::string& target) {
  const std::string relative = clear_place(path);
  if (::symlink(target.c_str(), host_path({relative}).c_str()) < 0)
    throw_errno("symlink", host_path({relative}));
  attributes_[relative] = Attributes{0, 0, 0777};
}

void RootTree::settle_modes(bool owner_access) const {
  if (::chmod(directory_.c_str(), 0755) < 0) throw_errno("chmod", directory_);
  // Deepest first, so a directory made read-only stays walkable until its
  // contents are done.
  for (auto it = attributes_.rbegin(); it != attributes_.rend(); ++it) {
    if (!under_real_directories(split(it->first))) continue;
    const std::string host = directory_ + "/" + it->first;
    struct stat st {};
    if (!lstat_of(host, st) || S_ISLNK(st.st_mode)) continue;
    const mode_t access = owner_access ? (S_ISDIR(st.st_mode) ? 0700 : 0400) : 0;
    if (::chmod(host.c_str(), it->second.mode | access) < 0) throw_errno("chmod", host);
  }
}

}  // namespace airlock::image

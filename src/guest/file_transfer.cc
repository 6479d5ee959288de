#include "guest/file_transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/io.h"
#include "guest/file_writer.h"
#include "guest/system_setup.h"

namespace airlock::guest {

using protocol::FrameType;

Upload::Upload(Channel& channel, const protocol::Frame& header_frame)
    : channel_(channel),
      stream_(header_frame.stream),
      header_(protocol::WriteFile::parse(header_frame.payload)),
      remaining_(header_.size) {
  try {
    std::optional<FilesystemIdentity> as_user;
    if (header_.as_user) as_user.emplace(kSandboxUid, kSandboxUid);
    file_.emplace(PendingFile::create(kRootfsMount, header_.path, header_.mode, kSandboxUid, kSandboxUid));
  } catch (const Error& e) {
    kind_ = error_kind(errno);
    failure_ = e.what();
  }
  if (remaining_ == 0) finish();
}

bool Upload::on_data(std::string_view data) {
  if (data.size() > remaining_) throw Error(ErrorCode::protocol, "file_data overruns size");
  remaining_ -= data.size();
  if (file_ && failure_.empty()) {
    try {
      write_all(file_->fd(), data);
    } catch (const Error& e) {
      kind_ = error_kind(errno);
      failure_ = e.what();
    }
  }
  if (remaining_ > 0) return false;
  finish();
  return true;
}

void Upload::finish() {
  if (file_ && failure_.empty()) {
    if (header_.mtime_ms != 0) {
      const timespec times[2] = {{0, UTIME_OMIT},
                                 {static_cast<time_t>(header_.mtime_ms / 1000),
                                  static_cast<long>(header_.mtime_ms % 1000) * 1'000'000}};
      ::futimens(file_->fd(), times);
    }
    try {
      std::optional<FilesystemIdentity> as_user;
      if (header_.as_user) as_user.emplace(kSandboxUid, kSandboxUid);
      file_->commit();
    } catch (const Error& e) {
      kind_ = error_kind(errno);
      failure_ = e.what();
    }
  }
  file_.reset();  // a file never put in place is removed
  if (!failure_.empty()) {
    channel_.send(FrameType::error, stream_,
                  protocol::ErrorReport{"write_file " + header_.path + ": " + failure_, kind_}.to_payload());
  } else if (header_.as_user) {
    channel_.send(FrameType::file_written, stream_, protocol::FileWritten{header_.size}.to_payload());
  }
}

Download::Download(Channel& channel, const protocol::Frame& request_frame)
    : channel_(channel),
      stream_(request_frame.stream),
      request_(protocol::ReadFile::parse(request_frame.payload)) {
  try {
    FilesystemIdentity as_user(kSandboxUid, kSandboxUid);
    file_ = open_file_in_root(kRootfsMount, request_.path);
  } catch (const Error& e) {
    refuse(e.what(), error_kind(errno));
    return;
  }
  struct stat info {};
  ::fstat(file_.get(), &info);
  mode_ = info.st_mode & 07777;
}

void Download::refuse(const std::string& message, const std::string& kind) {
  channel_.send(FrameType::error, stream_,
                protocol::ErrorReport{"read " + request_.path + ": " + message, kind}.to_payload());
  file_.reset();
  done_ = true;
}

bool Download::can_send() const {
  return !done_ && (request_.window == 0 || sent_ - acked_ < request_.window);
}

void Download::on_ack(uint64_t bytes) { acked_ = std::min(sent_, acked_ + bytes); }

bool Download::step() {
  std::string& chunk = buffer_;
  chunk.resize(protocol::kFileChunk);
  for (int chunks = 0; chunks < 2 && can_send(); ++chunks) {
    const ssize_t n = ::read(file_.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      refuse(std::string("read: ") + std::strerror(errno), error_kind(errno));
      break;
    }
    if (n == 0) {
      channel_.send(FrameType::file_end, stream_, protocol::FileEnd{sent_, mode_}.to_payload());
      file_.reset();
      done_ = true;
      break;
    }
    sent_ += static_cast<uint64_t>(n);
    if (sent_ > request_.max_bytes) {
      refuse("larger than " + std::to_string(request_.max_bytes) + " bytes", "too_large");
      break;
    }
    channel_.send(FrameType::file_data, stream_, std::string_view(chunk.data(), static_cast<size_t>(n)));
  }
  return done_;
}

namespace {

const char* type_name(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISLNK(mode)) return "symlink";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode)) return "char_device";
  return "block_device";
}

// Listing frames stay well inside the payload limit whatever the names.
constexpr size_t kListingBytes = 160 * 1024;

// The entry `name` of the directory `dir` as it is (a symlink described, not followed).
bool describe_entry(int dir, const char* name, protocol::DirEntry& entry) {
  struct stat info {};
  if (::fstatat(dir, name, &info, AT_SYMLINK_NOFOLLOW) < 0) return false;
  entry = {name,
           type_name(info.st_mode),
           static_cast<uint64_t>(info.st_size),
           static_cast<uint32_t>(info.st_mode & 07777),
           static_cast<int64_t>(info.st_mtim.tv_sec) * 1000 + info.st_mtim.tv_nsec / 1'000'000,
           {}};
  if (S_ISLNK(info.st_mode)) {
    char target[4096];
    const ssize_t n = ::readlinkat(dir, name, target, sizeof target);
    if (n > 0) entry.target.assign(target, static_cast<size_t>(n));
  }
  return true;
}

// Answers with a listing of the one path, as the sandbox user.
void send_description(Channel& channel, uint32_t stream, const std::string& path) {
  protocol::Listing listing;
  FilesystemIdentity as_user(kSandboxUid, kSandboxUid);
  const ParentDirectory parent = open_parent_in_root(kRootfsMount, path);
  protocol::DirEntry entry;
  if (!describe_entry(parent.dir.get(), parent.name.c_str(), entry)) throw_errno("stat", path);
  if (parent.name == ".") entry.name = "/";
  listing.entries.push_back(std::move(entry));
  channel.send(FrameType::listing, stream, listing.to_payload());
}

void send_file_error(Channel& channel, uint32_t stream, const std::string& message) {
  channel.send(FrameType::error, stream, protocol::ErrorReport{message, error_kind(errno)}.to_payload());
}

}  // namespace

void send_listing(Channel& channel, const protocol::Frame& frame) {
  const auto request = protocol::ListDir::parse(frame.payload);
  std::vector<protocol::DirEntry> entries;
  bool truncated = false;
  try {
    FilesystemIdentity as_user(kSandboxUid, kSandboxUid);
    UniqueFd dir = open_directory_in_root(kRootfsMount, request.path);
    // Reading it needs the user's read permission, checked here.
    UniqueFd listed(::openat(dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!listed) throw_errno("open", request.path);
    DIR* stream = ::fdopendir(listed.get());
    if (!stream) throw_errno("fdopendir", request.path);
    listed.release();
    while (dirent* entry = ::readdir(stream)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      if (entries.size() >= request.max_entries) {
        truncated = true;
        break;
      }
      protocol::DirEntry described;
      if (!describe_entry(::dirfd(stream), entry->d_name, described)) continue;  // gone meanwhile
      entries.push_back(std::move(described));
    }
    ::closedir(stream);
  } catch (const Error& e) {
    send_file_error(channel, frame.stream, "list " + request.path + ": " + e.what());
    return;
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  protocol::Listing listing;
  size_t bytes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    bytes += entries[i].name.size() * 6 + 128;  // the worst escaping
    listing.entries.push_back(std::move(entries[i]));
    if (listing.entries.size() == protocol::Listing::kEntriesPerFrame || bytes >= kListingBytes) {
      listing.more = i + 1 < entries.size();
      if (!listing.more) listing.truncated = truncated;
      channel.send(FrameType::listing, frame.stream, listing.to_payload());
      listing.entries.clear();
      bytes = 0;
      if (!listing.more) return;
    }
  }
  listing.more = false;
  listing.truncated = truncated;
  channel.send(FrameType::listing, frame.stream, listing.to_payload());
}

void remove_file(Channel& channel, const protocol::Frame& frame) {
  const auto request = protocol::RemoveFile::parse(frame.payload);
  try {
    FilesystemIdentity as_user(kSandboxUid, kSandboxUid);
    remove_in_root(kRootfsMount, request.path);
  } catch (const Error& e) {
    send_file_error(channel, frame.stream, e.what());
    return;
  }
  channel.send(FrameType::removed, frame.stream, "{}");
}

void describe_path(Channel& channel, const protocol::Frame& frame) {
  const auto request = protocol::StatPath::parse(frame.payload);
  try {
    send_description(channel, frame.stream, request.path);
  } catch (const Error& e) {
    send_file_error(channel, frame.stream, e.what());
  }
}

void make_node(Channel& channel, const protocol::Frame& frame) {
  const auto request = protocol::MakeNode::parse(frame.payload);
  try {
    {
      FilesystemIdentity as_user(kSandboxUid, kSandboxUid);
      make_node_in_root(kRootfsMount, request.path, request.kind, request.mode & 07777, request.target,
                        kSandboxUid, kSandboxUid);
    }
    send_description(channel, frame.stream, request.path);
  } catch (const Error& e) {
    send_file_error(channel, frame.stream, e.what());
  }
}

}  // namespace airlock::guest

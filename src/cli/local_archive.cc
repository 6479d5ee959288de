#include "cli/local_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <iostream>
#include <memory>

#include "common/error.h"
#include "common/io.h"
#include "engine/mux_archive.h"

namespace airlock::cli {

namespace {

using Archive = std::unique_ptr<archive, decltype(&archive_read_free)>;
using WriteArchive = std::unique_ptr<archive, decltype(&archive_write_free)>;
using Entry = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

std::string why(archive* a) {
  const char* text = archive_error_string(a);
  return text ? text : "unknown error";
}

struct Sink {
  const std::function<bool(std::string_view)>* send;
  bool gone = false;
};

la_ssize_t write_to_sink(archive*, void* data, const void* buffer, size_t length) {
  auto* sink = static_cast<Sink*>(data);
  if (!sink->gone) sink->gone = !(*sink->send)(std::string_view(static_cast<const char*>(buffer), length));
  return sink->gone ? -1 : static_cast<la_ssize_t>(length);
}

}  // namespace

void pack_local_directory(const std::string& directory, const std::function<bool(std::string_view)>& send) {
  std::string root = directory;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  Archive disk(archive_read_disk_new(), archive_read_free);
  archive_read_disk_set_symlink_physical(disk.get());
  archive_read_disk_set_behavior(
      disk.get(), ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL | ARCHIVE_READDISK_NO_FFLAGS);
  if (archive_read_disk_open(disk.get(), root.c_str()) != ARCHIVE_OK) {
    throw Error(ErrorCode::io, "cannot read " + directory + ": " + why(disk.get()));
  }
  WriteArchive out(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(out.get());
  Sink sink{&send};
  if (archive_write_open(out.get(), &sink, nullptr, write_to_sink, nullptr) != ARCHIVE_OK) {
    throw Error(ErrorCode::internal, "cannot write an archive: " + why(out.get()));
  }
  std::string buffer(256 * 1024, '\0');
  for (;;) {
    Entry entry(archive_entry_new(), archive_entry_free);
    const int status = archive_read_next_header2(disk.get(), entry.get());
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN) throw Error(ErrorCode::io, "reading " + directory + ": " + why(disk.get()));
    archive_read_disk_descend(disk.get());
    const std::string name = archive_entry_pathname(entry.get());
    const std::string below = name.size() > root.size() ? name.substr(root.size()) : "";
    const mode_t type = archive_entry_filetype(entry.get());
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      std::cerr << "airlock: left out " << name << " (a socket, FIFO or device)\n";
      continue;
    }
    archive_entry_set_pathname(entry.get(), below.empty() ? "./" : ("." + below).c_str());
    if (archive_write_header(out.get(), entry.get()) != ARCHIVE_OK) {
      if (sink.gone) return;
      throw Error(ErrorCode::internal, "archiving " + name + ": " + why(out.get()));
    }
    if (type != AE_IFREG) continue;
    for (;;) {
      const la_ssize_t n = archive_read_data(disk.get(), buffer.data(), buffer.size());
      if (n < 0) throw Error(ErrorCode::io, "reading " + name + ": " + why(disk.get()));
      if (n == 0) break;
      if (archive_write_data(out.get(), buffer.data(), static_cast<size_t>(n)) != n) {
        if (sink.gone) return;
        throw Error(ErrorCode::internal, "archiving " + name + ": " + why(out.get()));
      }
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK && !sink.gone) {
    throw Error(ErrorCode::internal, "finishing the archive: " + why(out.get()));
  }
}

LocalExtraction::LocalExtraction(std::string into) : into_(std::move(into)) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) throw_errno("socketpair");
  feeder_.reset(pair[0]);
  reader_.reset(pair[1]);
  if (::mkdir(into_.c_str(), 0700) < 0) throw_errno("mkdir", into_);
  worker_ = std::thread([this] { extract(); });
}

LocalExtraction::~LocalExtraction() {
  feeder_.reset();
  if (worker_.joinable()) worker_.join();
}

bool LocalExtraction::feed(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(feeder_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void LocalExtraction::finish() {
  feeder_.reset();
  if (worker_.joinable()) worker_.join();
  if (!failure_.empty()) throw Error(ErrorCode::io, "extracting into " + into_ + ": " + failure_);
}

void LocalExtraction::extract() {
  Archive reader(archive_read_new(), archive_read_free);
  WriteArchive disk(archive_write_disk_new(), archive_write_free);
  archive_read_support_format_tar(reader.get());
  archive_write_disk_set_options(disk.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                 ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                 ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  try {
    if (archive_read_open_fd(reader.get(), reader_.get(), 64 * 1024) != ARCHIVE_OK) {
      throw Error(ErrorCode::protocol, why(reader.get()));
    }
    int entries = 0;
    std::string only;
    for (;;) {
      archive_entry* entry = nullptr;
      const int status = archive_read_next_header(reader.get(), &entry);
      if (status == ARCHIVE_EOF) break;
      if (status < ARCHIVE_WARN) throw Error(ErrorCode::protocol, why(reader.get()));
      const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
      // The one check of names the daemon's side makes too: no absolute name, no "..".
      const std::string relative = engine::archive_entry_path("/", name).substr(1);
      const mode_t type = archive_entry_filetype(entry);
      if (archive_entry_hardlink(entry) || (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)) {
        throw Error(ErrorCode::protocol,
                    "the archive holds '" + name + "', not a file, directory or symlink");
      }
      ++entries;
      only = type == AE_IFDIR ? "" : relative;
      archive_entry_set_pathname(entry, relative.empty() ? into_.c_str() : (into_ + "/" + relative).c_str());
      if (archive_write_header(disk.get(), entry) < ARCHIVE_WARN) throw Error(ErrorCode::io, why(disk.get()));
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      for (;;) {
        const int read = archive_read_data_block(reader.get(), &block, &size, &offset);
        if (read == ARCHIVE_EOF) break;
        if (read < ARCHIVE_WARN) throw Error(ErrorCode::protocol, why(reader.get()));
        if (archive_write_data_block(disk.get(), block, size, offset) < ARCHIVE_WARN) {
          throw Error(ErrorCode::io, why(disk.get()));
        }
      }
      if (archive_write_finish_entry(disk.get()) < ARCHIVE_WARN) throw Error(ErrorCode::io, why(disk.get()));
    }
    if (archive_write_close(disk.get()) < ARCHIVE_WARN) throw Error(ErrorCode::io, why(disk.get()));
    if (entries == 1) single_entry_ = only;
    // The blocks that pad the archive's end: read, so the feeder never sees a closed socket.
    char scratch[65536];
    while (read_some(reader_.get(), scratch, sizeof scratch).value_or(1) > 0) {
    }
  } catch (const Error& e) {
    failure_ = e.what();
  }
  reader_.reset();
}

}  // namespace airlock::cli

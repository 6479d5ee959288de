#include "engine/mux_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <exception>
#include <memory>
#include <vector>

#include "common/error.h"
#include "protocol/guest_path.h"

namespace airlock::engine {

namespace {

using ReadArchive = std::unique_ptr<archive, decltype(&archive_read_free)>;
using WriteArchive = std::unique_ptr<archive, decltype(&archive_write_free)>;
using Entry = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

constexpr size_t kReadPiece = 256 * 1024;
constexpr size_t kWritePiece = 256 * 1024;

// libarchive calls back into C++ that may throw; the exception waits here
// until libarchive has returned, and is rethrown as the failure's cause.
struct ReadSource {
  explicit ReadSource(const ContentReader& reader) : read(&reader) {}
  const ContentReader* read;
  std::string buffer = std::string(kReadPiece, '\0');
  std::exception_ptr failure;
};

la_ssize_t read_source(archive*, void* data, const void** out) {
  auto* source = static_cast<ReadSource*>(data);
  try {
    const size_t n = (*source->read)(source->buffer.data(), source->buffer.size());
    *out = source->buffer.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    source->failure = std::current_exception();
    return -1;
  }
}

[[noreturn]] void fail_reading(archive* reader, const ReadSource& source, const std::string& where) {
  if (source.failure) std::rethrow_exception(source.failure);
  const char* why = archive_error_string(reader);
  throw Error(ErrorCode::invalid_argument,
              "the body is not a tar archive we can read" + where + ": " + (why ? why : "unknown error"));
}

int64_t mtime_ms_of(archive_entry* entry) {
  if (!archive_entry_mtime_is_set(entry)) return 0;
  const int64_t ms =
      static_cast<int64_t>(archive_entry_mtime(entry)) * 1000 + archive_entry_mtime_nsec(entry) / 1'000'000;
  return ms == 0 ? 1 : ms;  // 0 means "now" on the wire
}

const char* refused_type(mode_t type) {
  switch (type) {
    case AE_IFIFO: return "a FIFO";
    case AE_IFCHR: return "a character device";
    case AE_IFBLK: return "a block device";
    case AE_IFSOCK: return "a socket";
    default: return "of an unknown type";
  }
}

}  // namespace

std::string archive_entry_path(const std::string& directory, const std::string& name) {
  if (name.empty()) throw Error(ErrorCode::invalid_argument, "an archive entry has no name");
  if (name.front() == '/') {
    throw Error(ErrorCode::invalid_argument,
                "archive entry '" + name + "' has an absolute name; names must be relative");
  }
  std::vector<std::string> parts = protocol::split_guest_directory(directory);
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('/', start), name.size());
    const std::string part = name.substr(start, end - start);
    if (part == "..") {
      throw Error(ErrorCode::invalid_argument,
                  "archive entry '" + name + "' has a '..' in its name; it could reach outside " + directory);
    }
    if (!part.empty() && part != ".") parts.push_back(part);
    start = end + 1;
  }
  const std::string path = protocol::join_guest_path(parts);
  if (path.size() > 4096)
    throw Error(ErrorCode::invalid_argument, "archive entry '" + name + "' is too long");
  return path;
}

ArchiveCounts unpack_archive(GuestMux& mux, const std::string& directory, const ContentReader& read,
                             std::chrono::milliseconds stall) {
  ReadArchive reader(archive_read_new(), archive_read_free);
  if (!reader) throw Error(ErrorCode::internal, "libarchive could not make a reader");
  archive_read_support_format_tar(reader.get());
  archive_read_support_filter_gzip(reader.get());
  archive_read_support_filter_bzip2(reader.get());
  archive_read_support_filter_xz(reader.get());
  archive_read_support_filter_zstd(reader.get());
  ReadSource source(read);
  if (archive_read_open(reader.get(), &source, nullptr, read_source, nullptr) != ARCHIVE_OK) {
    fail_reading(reader.get(), source, "");
  }
  auto deadline = [&] { return SteadyClock::now() + stall; };
  // Made if missing; one that is there keeps its mode (unless the archive has a "./").
  try {
    const protocol::DirEntry there = describe_path(mux, directory, deadline());
    if (there.type != "directory")
      throw Error(ErrorCode::conflict, directory + " is a " + there.type + ", not a directory");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::not_found) throw;
    make_node(mux, protocol::MakeNode{directory, "directory", 0755, ""}, deadline());
  }
  ArchiveCounts counts;
  uint64_t entries = 0;
  for (;;) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(reader.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN)
      fail_reading(reader.get(), source, " after " + std::to_string(entries) + " entries");
    if (++entries > kMaxArchiveEntries) {
      throw Error(ErrorCode::too_large,
                  "the archive has more than " + std::to_string(kMaxArchiveEntries) + " entries");
    }
    const char* raw_name = archive_entry_pathname(entry);
    const std::string name = raw_name ? raw_name : "";
    const std::string path = archive_entry_path(directory, name);
    const uint32_t mode = archive_entry_perm(entry) & 0777;
    if (archive_entry_hardlink(entry)) {
      throw Error(ErrorCode::invalid_argument, "archive entry '" + name + "' is a hard link (to '" +
                                                   archive_entry_hardlink(entry) +
                                                   "'); hard links are not extracted");
    }
    const mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) {
      make_node(mux, protocol::MakeNode{path, "directory", mode, ""}, deadline());
      ++counts.directories;
    } else if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (!target || !*target)
        throw Error(ErrorCode::invalid_argument, "archive entry '" + name + "' is a symlink to nothing");
      make_node(mux, protocol::MakeNode{path, "symlink", 0777, target}, deadline());
      ++counts.symlinks;
    } else if (type == AE_IFREG) {
      const uint64_t size =
          archive_entry_size_is_set(entry) ? static_cast<uint64_t>(archive_entry_size(entry)) : 0;
      upload_file(
          mux, path, size, mode,
          [&](char* buffer, size_t max) -> size_t {
            const la_ssize_t n = archive_read_data(reader.get(), buffer, max);
            if (n < 0) fail_reading(reader.get(), source, " in entry '" + name + "'");
            if (n == 0) throw Error(ErrorCode::invalid_argument, "archive entry '" + name + "' is cut short");
            return static_cast<size_t>(n);
          },
          stall, mtime_ms_of(entry));
      ++counts.files;
      counts.bytes += size;
    } else {
      throw Error(ErrorCode::invalid_argument, "archive entry '" + name + "' is " + refused_type(type) +
                                                   "; only directories, files and symlinks are extracted");
    }
  }
  return counts;
}

namespace {

// Where libarchive writes the archive: gathered into pieces of a quarter
// megabyte (its own blocks are 10 KiB) for the reader.
struct WriteSink {
  explicit WriteSink(const std::function<bool(std::string_view)>& reader) : on_data(&reader) {}
  const std::function<bool(std::string_view)>* on_data;
  std::string pending;
  bool gone = false;
  std::exception_ptr failure;

  bool flush() {
    if (pending.empty() || gone) return !gone;
    try {
      gone = !(*on_data)(pending);
    } catch (...) {
      failure = std::current_exception();
      gone = true;
    }
    pending.clear();
    return !gone;
  }
};

la_ssize_t write_sink(archive*, void* data, const void* buffer, size_t length) {
  auto* sink = static_cast<WriteSink*>(data);
  sink->pending.append(static_cast<const char*>(buffer), length);
  if (sink->pending.size() >= kWritePiece && !sink->flush()) return -1;
  return static_cast<la_ssize_t>(length);
}

class Packer {
 public:
  Packer(GuestMux& mux, const std::function<bool(std::string_view)>& on_data,
         std::chrono::milliseconds per_file)
      : mux_(mux), per_file_(per_file), sink_(on_data) {
    if (!writer_) throw Error(ErrorCode::internal, "libarchive could not make a writer");
    archive_write_set_format_pax_restricted(writer_.get());
    if (archive_write_open(writer_.get(), &sink_, nullptr, write_sink, nullptr) != ARCHIVE_OK) fail();
  }

  void pack(const std::string& path, const std::string& name, const protocol::DirEntry& described,
            int depth) {
    if (++entries_ > kMaxArchiveEntries) {
      throw Error(ErrorCode::too_large,
                  "more than " + std::to_string(kMaxArchiveEntries) + " entries under the path");
    }
    if (described.type != "file" && described.type != "directory" && described.type != "symlink") {
      ++counts_.skipped;
      return;
    }
    Entry entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_perm(entry.get(), described.mode & 07777);
    archive_entry_set_mtime(entry.get(), described.mtime_ms / 1000, (described.mtime_ms % 1000) * 1'000'000);
    archive_entry_set_uid(entry.get(), 1000);
    archive_entry_set_gid(entry.get(), 1000);
    if (described.type == "directory") {
      archive_entry_set_filetype(entry.get(), AE_IFDIR);
      write_header(entry.get());
      ++counts_.directories;
      if (depth >= kMaxArchiveDepth) {
        throw Error(ErrorCode::too_large,
                    path + " is deeper than " + std::to_string(kMaxArchiveDepth) + " directories");
      }
      const DirectoryListing listing =
          list_directory(mux_, path, protocol::ListDir::kMaxEntries, SteadyClock::now() + per_file_);
      if (listing.truncated) {
        throw Error(ErrorCode::too_large,
                    path + " has more than " + std::to_string(protocol::ListDir::kMaxEntries) + " entries");
      }
      const std::string prefix = name == "./" ? "./" : name;
      for (const auto& child : listing.entries) {
        const std::string child_path = path == "/" ? "/" + child.name : path + "/" + child.name;
        pack(child_path, prefix + child.name + (child.type == "directory" ? "/" : ""), child, depth + 1);
      }
    } else if (described.type == "symlink") {
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_symlink(entry.get(), described.target.c_str());
      write_header(entry.get());
      ++counts_.symlinks;
    } else {
      pack_file(path, described, entry.get());
    }
  }

  ArchiveCounts finish() {
    if (archive_write_close(writer_.get()) != ARCHIVE_OK) fail();
    if (!sink_.flush()) fail();
    return counts_;
  }

 private:
  void pack_file(const std::string& path, const protocol::DirEntry& described, archive_entry* entry) {
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_size(entry, static_cast<la_int64_t>(described.size));
    write_header(entry);
    uint64_t left = described.size;
    bool grew = false;
    try {
      download_file(
          mux_, path, UINT64_MAX,
          [&](std::string_view data) {
            const size_t take = static_cast<size_t>(std::min<uint64_t>(left, data.size()));
            write_data(data.substr(0, take));
            left -= take;
            grew = take < data.size();
            return !grew;  // more than it was listed with: the rest is not read
          },
          SteadyClock::now() + per_file_);
    } catch (const Error&) {
      if (!grew) throw;
    }
    // Shorter than it was listed with: the entry still holds its size.
    const std::string zeros(64 * 1024, '\0');
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
      write_data(std::string_view(zeros.data(), n));
      left -= n;
    }
    ++counts_.files;
    counts_.bytes += described.size;
  }

  void write_header(archive_entry* entry) {
    if (archive_write_header(writer_.get(), entry) != ARCHIVE_OK) fail();
  }

  void write_data(std::string_view data) {
    if (archive_write_data(writer_.get(), data.data(), data.size()) != static_cast<la_ssize_t>(data.size()))
      fail();
  }

  [[noreturn]] void fail() {
    if (sink_.failure) std::rethrow_exception(sink_.failure);
    if (sink_.gone) throw Error(ErrorCode::cancelled, "the reader of the archive went away");
    const char* why = archive_error_string(writer_.get());
    throw Error(ErrorCode::internal,
                std::string("writing the archive failed: ") + (why ? why : "unknown error"));
  }

  GuestMux& mux_;
  const std::chrono::milliseconds per_file_;
  WriteSink sink_;
  WriteArchive writer_{archive_write_new(), archive_write_free};
  ArchiveCounts counts_;
  uint64_t entries_ = 0;
};

}  // namespace

ArchiveCounts pack_archive(GuestMux& mux, const std::string& path,
                           const std::function<bool(std::string_view)>& on_data,
                           std::chrono::milliseconds per_file) {
  const protocol::DirEntry root = describe_path(mux, path, SteadyClock::now() + per_file);
  Packer packer(mux, on_data, per_file);
  if (root.type == "directory") {
    packer.pack(path, "./", root, 0);
  } else if (root.type == "file" || root.type == "symlink") {
    packer.pack(path, root.name, root, 0);
  } else {
    throw Error(ErrorCode::conflict, path + " is a " + root.type + ", not a file, directory or symlink");
  }
  return packer.finish();
}

}  // namespace airlock::engine

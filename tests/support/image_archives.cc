#include "support/image_archives.h"

#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <stdexcept>

#include "common/io.h"
#include "image/oci_source.h"

namespace airlock::testing {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Entry = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

Entry entry_of(const std::string& name, mode_t type, int mode, int uid, int gid, int64_t size) {
  Entry entry(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), type);
  archive_entry_set_perm(entry.get(), mode);
  archive_entry_set_uid(entry.get(), uid);
  archive_entry_set_gid(entry.get(), gid);
  archive_entry_set_size(entry.get(), size);
  archive_entry_set_mtime(entry.get(), 1700000000, 0);
  return entry;
}

void check(archive* a, int status) {
  if (status < ARCHIVE_WARN)
    throw std::runtime_error(archive_error_string(a) ? archive_error_string(a) : "tar");
}

std::string put_blob(const std::string& directory, const std::string& bytes) {
  const std::string staged = directory + "/blob.tmp";
  write_file(staged, bytes);
  const std::string digest = image::sha256_of_file(staged);
  fs::rename(staged, directory + "/blobs/sha256/" + digest.substr(7));
  return digest;
}

std::string put_blob_file(const std::string& directory, const std::string& path) {
  const std::string digest = image::sha256_of_file(path);
  fs::copy_file(path, directory + "/blobs/sha256/" + digest.substr(7), fs::copy_options::overwrite_existing);
  return digest;
}

json config_of(const ImageSpec& spec) {
  json config = {{"architecture", spec.architecture},
                 {"os", "linux"},
                 {"config", {{"Env", spec.env}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
  if (!spec.cmd.empty()) config["config"]["Cmd"] = spec.cmd;
  return config;
}

}  // namespace

TarWriter::TarWriter(const std::string& path, bool gzip) : archive_(archive_write_new(), archive_write_free) {
  archive_write_set_format_pax_restricted(archive_.get());
  if (gzip) archive_write_add_filter_gzip(archive_.get());
  check(archive_.get(), archive_write_open_filename(archive_.get(), path.c_str()));
}

TarWriter::~TarWriter() {
  if (!closed_) archive_write_close(archive_.get());
}

TarWriter& TarWriter::dir(const std::string& name, int mode, int uid, int gid) {
  check(archive_.get(),
        archive_write_header(archive_.get(), entry_of(name, AE_IFDIR, mode, uid, gid, 0).get()));
  return *this;
}

TarWriter& TarWriter::file(const std::string& name, const std::string& contents, int mode, int uid, int gid) {
  auto entry = entry_of(name, AE_IFREG, mode, uid, gid, static_cast<int64_t>(contents.size()));
  check(archive_.get(), archive_write_header(archive_.get(), entry.get()));
  if (!contents.empty() && archive_write_data(archive_.get(), contents.data(), contents.size()) < 0) {
    check(archive_.get(), ARCHIVE_FATAL);
  }
  return *this;
}

TarWriter& TarWriter::zeros(const std::string& name, uint64_t size) {
  auto entry = entry_of(name, AE_IFREG, 0644, 0, 0, static_cast<int64_t>(size));
  check(archive_.get(), archive_write_header(archive_.get(), entry.get()));
  const std::string block(1 << 20, '\0');
  for (uint64_t done = 0; done < size; done += block.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), size - done));
    if (archive_write_data(archive_.get(), block.data(), n) < 0) check(archive_.get(), ARCHIVE_FATAL);
  }
  return *this;
}

TarWriter& TarWriter::sparse(const std::string& name, uint64_t size) {
  auto entry = entry_of(name, AE_IFREG, 0644, 0, 0, static_cast<int64_t>(size));
  archive_entry_sparse_add_entry(entry.get(), static_cast<int64_t>(size) - 1, 1);
  check(archive_.get(), archive_write_header(archive_.get(), entry.get()));
  if (archive_write_data(archive_.get(), "x", 1) < 0) check(archive_.get(), ARCHIVE_FATAL);
  return *this;
}

TarWriter& TarWriter::symlink(const std::string& name, const std::string& target) {
  auto entry = entry_of(name, AE_IFLNK, 0777, 0, 0, 0);
  archive_entry_set_symlink(entry.get(), target.c_str());
  check(archive_.get(), archive_write_header(archive_.get(), entry.get()));
  return *this;
}

TarWriter& TarWriter::hardlink(const std::string& name, const std::string& target) {
  auto entry = entry_of(name, AE_IFREG, 0644, 0, 0, 0);
  archive_entry_set_hardlink(entry.get(), target.c_str());
  check(archive_.get(), archive_write_header(archive_.get(), entry.get()));
  return *this;
}

TarWriter& TarWriter::device(const std::string& name) {
  auto entry = entry_of(name, AE_IFCHR, 0666, 0, 0, 0);
  archive_entry_set_rdev(entry.get(), makedev(8, 0));
  check(archive_.get(), archive_write_header(archive_.get(), entry.get()));
  return *this;
}

TarWriter& TarWriter::file_from(const std::string& name, const std::string& path) {
  return file(name, read_file(path, 1ull << 31));
}

void TarWriter::close() {
  check(archive_.get(), archive_write_close(archive_.get()));
  closed_ = true;
}

std::string write_oci_layout(const std::string& directory, const ImageSpec& spec) {
  fs::create_directories(directory + "/blobs/sha256");
  write_file(directory + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  json layers = json::array();
  for (const auto& layer : spec.layers) {
    layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                      {"digest", put_blob_file(directory, layer)},
                      {"size", fs::file_size(layer)}});
  }
  const std::string config = config_of(spec).dump();
  const std::string config_digest = put_blob(directory, config);
  const std::string manifest = json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
        {"digest", config_digest},
        {"size", config.size()}}},
      {"layers", layers}}.dump();
  const std::string manifest_digest = put_blob(directory, manifest);
  // An arm64 sibling first: the import must pick amd64 from the index.
  const json index = {{"schemaVersion", 2},
                      {"manifests",
                       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"digest", "sha256:" + std::string(64, '0')},
                         {"size", 1},
                         {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
                        {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"digest", manifest_digest},
                         {"size", manifest.size()},
                         {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  write_file(directory + "/index.json", index.dump());
  return config_digest;
}

std::string write_docker_archive(const std::string& path, const ImageSpec& spec) {
  const std::string config = config_of(spec).dump();
  const std::string staged = path + ".config";
  write_file(staged, config);
  const std::string digest = image::sha256_of_file(staged);
  fs::remove(staged);
  json layers = json::array();
  TarWriter tar(path);
  tar.file(digest.substr(7) + ".json", config);
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const std::string name = std::to_string(i) + "/layer.tar";
    tar.dir(std::to_string(i) + "/").file_from(name, spec.layers[i]);
    layers.push_back(name);
  }
  tar.file(
      "manifest.json",
      json::array({{{"Config", digest.substr(7) + ".json"}, {"RepoTags", {"test:1"}}, {"Layers", layers}}})
          .dump());
  tar.close();
  return digest;
}

void tar_directory(const std::string& directory, const std::string& path) {
  TarWriter tar(path);
  for (const auto& entry : fs::recursive_directory_iterator(directory)) {
    const std::string name = fs::relative(entry.path(), directory).string();
    if (entry.is_directory()) {
      tar.dir(name + "/");
    } else {
      tar.file_from(name, entry.path().string());
    }
  }
  tar.close();
}

}  // namespace airlock::testing

#pragma once

#include <archive.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace airlock::testing {

// Writes a layer (or any) tar for the image import tests, entry by entry,
// with the owners, modes and types a hostile or ordinary layer might have.
class TarWriter {
 public:
  explicit TarWriter(const std::string& path, bool gzip = false);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  TarWriter& dir(const std::string& name, int mode = 0755, int uid = 0, int gid = 0);
  TarWriter& file(const std::string& name, const std::string& contents, int mode = 0644, int uid = 0,
                  int gid = 0);
  // A file of `size` zero bytes, written in pieces (a decompression bomb).
  TarWriter& zeros(const std::string& name, uint64_t size);
  // A sparse file of `size` bytes holding one byte of data (pax sparse map).
  TarWriter& sparse(const std::string& name, uint64_t size);
  TarWriter& symlink(const std::string& name, const std::string& target);
  TarWriter& hardlink(const std::string& name, const std::string& target);
  TarWriter& device(const std::string& name);
  // Another tar's bytes as one file (an archive holding layers).
  TarWriter& file_from(const std::string& name, const std::string& path);
  void close();

 private:
  std::unique_ptr<archive, decltype(&archive_write_free)> archive_;
  bool closed_ = false;
};

// An OCI image layout at `directory` (oci-layout, index.json, blobs/) of
// these layer tars and this image config ("config" gets `env`).
struct ImageSpec {
  std::vector<std::string> layers;  // paths of layer tars, lowest first
  std::vector<std::string> env;
  std::vector<std::string> cmd;
  std::string architecture = "amd64";
};
// Returns the config's digest ("sha256:...").
std::string write_oci_layout(const std::string& directory, const ImageSpec& spec);
// A `docker save` tar: manifest.json, <id>.json, <n>/layer.tar.
std::string write_docker_archive(const std::string& path, const ImageSpec& spec);
// A tar of a whole directory (an OCI archive of a layout).
void tar_directory(const std::string& directory, const std::string& path);

}  // namespace airlock::testing

#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "image/image_name.h"
#include "image/root_tree.h"

namespace airlock::image {

// An image a user imported, as the store keeps it.
struct StoredImage {
  std::string name;
  std::string digest;          // "sha256:<hex>" of its config
  std::string content_digest;  // of its config and layers (ImageSource): images sharing it share the ext4
  std::string rootfs;          // the ext4 image guests boot from
  std::string source;          // what it was imported from
  std::string format;          // oci-layout, oci-archive, docker-archive, registry
  std::vector<std::string> languages;  // first: what a run of it gets when it names none
  std::vector<std::string> env;        // NAME=VALUE from its config, for every program
  uint64_t bytes = 0;                  // the ext4 image's size on disk
  int64_t created = 0;                 // unix seconds
};

// As `airlock image ls --json` prints it, and image.json holds it.
nlohmann::json to_json(const StoredImage& image);

struct ImportOptions {
  std::string name;
  bool replace = false;      // put it in place of an image of that name
  std::string source_label;  // what image.json says it came from; empty: the source's absolute path
  UnpackLimits limits;
  // Each language airlock runs and its program's path in an image, in order
  // of preference for the image's default (the engine's table).
  std::vector<std::pair<std::string, std::string>> interpreters;
};

struct ImportResult {
  StoredImage image;
  UnpackReport report;
  bool reused = false;  // an image of the same digest was there: its root filesystem is shared
};

// Imported images under one directory, one subdirectory per name
// (rootfs.ext4, image.json). An import is built in a hidden directory of
// the store and renamed into place, so a reader never sees half an image
// and a killed import leaves only what the next one reaps. Images of the
// same digest share one ext4 file (a hard link), hence one template.
class ImageStore {
 public:
  explicit ImageStore(std::string directory);

  // Throws Error(invalid_argument) for a bad name, an image with no
  // language airlock runs, or a hostile or malformed image (naming what);
  // Error(conflict) when the name is taken and not `replace`.
  ImportResult import(const std::string& source, const ImportOptions& options);

  std::optional<StoredImage> find(const std::string& name) const;
  std::vector<StoredImage> list() const;
  // Throws Error(not_found) when there is no such image. Guests running
  // from it keep their open file.
  void remove(const std::string& name);

  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
};

}  // namespace airlock::image

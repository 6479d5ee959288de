#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "image/root_tree.h"

namespace airlock::image {

// An image as its files give it: the layers to apply and its config.
struct ImageSource {
  std::string format;               // "oci-layout", "oci-archive" or "docker-archive"
  std::string digest;               // "sha256:<hex>" of its config: the image's identity
  std::vector<std::string> layers;  // host paths of the layer tars, lowest first
  // sha256 of the config and of every layer as stored, checked: what two
  // imports must share to share a root filesystem (the config's digest
  // alone vouches for layers nobody checked against its diff_ids).
  std::string content_digest;
  nlohmann::json config;  // the image config (its "config" holds Env, Cmd, ...)
};

// Reads an OCI image layout directory, or a tar holding one (an OCI
// archive) or made by `docker save` (manifest.json; Docker 25's tars are
// both), unpacking a tar into `work`. Every blob named by digest is checked
// against it. Picks the linux/amd64 image of a multi-platform index.
// Throws Error(invalid_argument) naming what is missing, damaged or of
// another platform.
ImageSource read_image_source(const std::string& path, const std::string& work, const UnpackLimits& limits);

// "sha256:<hex>" of a file's contents, of bytes.
std::string sha256_of_file(const std::string& path);
std::string sha256_of(std::string_view bytes);

}  // namespace airlock::image

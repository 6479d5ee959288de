#pragma once

#include <chrono>
#include <string>

#include "image/root_tree.h"

namespace airlock::image {

// "localhost:5000/team/tools:1.2", "debian:12", "ghcr.io/o/r@sha256:...",
// read as docker does: the first component is a registry when it has a '.'
// or a ':' or is "localhost" (else Docker Hub, "library/" for one name);
// the tag defaults to "latest".
struct ImageReference {
  std::string registry;    // host[:port] as written ("registry-1.docker.io" for Docker Hub)
  std::string repository;  // "team/tools"
  std::string reference;   // a tag, or a digest "sha256:..."
  std::string text() const;
};
// Throws Error(invalid_argument) saying what is malformed.
ImageReference parse_image_reference(const std::string& text);

struct PullOptions {
  // Plain HTTP. Loopback registries (localhost, 127.*, [::1]) always are.
  bool insecure = false;
  // For each request: a blob gets a second more for each MiB it has.
  std::chrono::seconds timeout{300};
  UnpackLimits limits;  // a layer larger than max_bytes is refused before it is fetched
};

// Fetches the image `reference` names from its registry (the OCI
// distribution API, anonymously: a Bearer token when the registry asks for
// one) into an OCI layout at `directory`, which it makes: the linux/amd64
// manifest of an index, its config and layers, each checked against its
// digest as it lands. Throws Error(not_found) when the registry has no such
// image, Error(unavailable) when it cannot be reached or answers otherwise,
// Error(invalid_argument) for what it serves that is not an image or does
// not match its digest.
void pull_to_layout(const ImageReference& reference, const std::string& directory,
                    const PullOptions& options);

}  // namespace airlock::image

#pragma once

#include <map>
#include <string>
#include <vector>

#include "vmm/vm_backend.h"

namespace airlock::engine {

struct RunRequest;

// A root filesystem image (images/build): what a guest's disk is made from.
struct RootfsImage {
  std::string name;
  std::string path;
  // The languages whose interpreter it has; the first is the one a run of
  // the image gets when it names none.
  std::vector<std::string> languages;
  // NAME=VALUE for every program in it, after the language's own defaults.
  std::vector<std::string> env;
  // Of an imported image (image::ImageStore): its config digest and where
  // it came from; both empty for a built one.
  std::string digest = {};
  std::string source = {};
};

// The guest images that images/build produced, as listed in its manifest.
class ImageCatalog {
 public:
  // `imported_dir`: an image::ImageStore's directory whose images are
  // looked up (on each call: an import is seen at once) after the built ones.
  static ImageCatalog load(const std::string& manifest_path, const std::string& imported_dir = "");

  // `name` empty means the default kernel. Throws Error(not_found) naming the
  // known kernels when there is no such kernel.
  const vmm::KernelImage& kernel(const std::string& name) const;
  // The image called `name`, built or imported, its file checked to exist.
  // Throws Error(invalid_argument) naming the known images when there is none.
  RootfsImage image(const std::string& name) const;
  const std::map<std::string, RootfsImage>& images() const { return images_; }
  // The built images, then the imported ones, each by name.
  std::vector<RootfsImage> all_images() const;

 private:
  std::string manifest_path_;
  std::string imported_dir_;
  std::string default_kernel_;
  std::map<std::string, vmm::KernelImage> kernels_;
  std::map<std::string, RootfsImage> images_;
};

// Completes a request's choice of image: the image (the language's own,
// named like it, when none is given), the language (the image's first when
// none is given) and the image's environment. Throws Error(invalid_argument)
// for an unknown image or one without the language's interpreter.
void choose_image(const ImageCatalog& catalog, RunRequest& request);

}  // namespace airlock::engine

#pragma once

#include <map>
#include <string>

#include "vmm/vm_backend.h"

namespace airlock::engine {

// The guest images that images/build produced, as listed in its manifest.
class ImageCatalog {
 public:
  static ImageCatalog load(const std::string& manifest_path);

  // `name` empty means the default kernel. Throws Error(not_found) naming the
  // known kernels when there is no such kernel.
  const vmm::KernelImage& kernel(const std::string& name) const;
  // Path of a language's root filesystem image.
  const std::string& rootfs(const std::string& language) const;

 private:
  std::string manifest_path_;
  std::string default_kernel_;
  std::map<std::string, vmm::KernelImage> kernels_;
  std::map<std::string, std::string> rootfs_;
};

}  // namespace airlock::engine

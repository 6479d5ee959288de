#include "engine/images.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/io.h"
#include "engine/languages.h"
#include "engine/run_request.h"
#include "image/image_store.h"

namespace airlock::engine {

using nlohmann::json;

namespace {

std::string required_string(const json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_string()) {
    throw Error(ErrorCode::invalid_argument, where + ": missing string field '" + key + "'");
  }
  return object[key].get<std::string>();
}

// "a, b, c": what an error lists as the choices there are.
template <typename Names>
std::string listed(const Names& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

template <typename Map>
std::vector<std::string> keys_of(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& entry : map) keys.push_back(entry.first);
  return keys;
}

void require_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::not_found,
                what + " " + path + " does not exist; rebuild the images (images/build)");
  }
}

RootfsImage imported_image(const image::StoredImage& stored) {
  return {stored.name, stored.rootfs, stored.languages, stored.env, stored.digest, stored.source};
}

}  // namespace

ImageCatalog ImageCatalog::load(const std::string& manifest_path, const std::string& imported_dir) {
  json manifest = json::parse(read_file(manifest_path, 1 << 20), nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    throw Error(ErrorCode::invalid_argument, "image manifest " + manifest_path + " is not a JSON object");
  }
  if (manifest.value("version", 0) != 1) {
    throw Error(ErrorCode::invalid_argument, "image manifest " + manifest_path + " has an unknown version");
  }
  ImageCatalog catalog;
  catalog.manifest_path_ = manifest_path;
  catalog.imported_dir_ = imported_dir;
  catalog.default_kernel_ = required_string(manifest, "default_kernel", manifest_path);
  const json kernels = manifest.contains("kernels") ? manifest["kernels"] : json::object();
  const json rootfs = manifest.contains("rootfs") ? manifest["rootfs"] : json::object();
  for (auto& [name, entry] : kernels.items()) {
    const std::string where = manifest_path + " kernels." + name;
    vmm::KernelImage image;
    image.path = required_string(entry, "path", where);
    image.initramfs = required_string(entry, "initramfs", where);
    image.machine = required_string(entry, "machine", where);
    image.cmdline_extra = entry.value("cmdline", "");
    catalog.kernels_[name] = image;
  }
  for (auto& [name, entry] : rootfs.items()) {
    const std::string where = manifest_path + " rootfs." + name;
    RootfsImage image{name, required_string(entry, "path", where), {}, {}};
    auto strings = [&](const char* key) {
      std::vector<std::string> values;
      if (!entry.contains(key)) return values;
      const json& list = entry[key];
      if (!list.is_array() ||
          !std::all_of(list.begin(), list.end(), [](const json& v) { return v.is_string(); })) {
        throw Error(ErrorCode::invalid_argument, where + ": '" + key + "' is not a list of strings");
      }
      for (const auto& value : list) values.push_back(value.get<std::string>());
      return values;
    };
    // A manifest of before images had languages named its images after them.
    image.languages = entry.contains("languages") ? strings("languages") : std::vector<std::string>{name};
    image.env = strings("env");
    for (const auto& assignment : image.env) {
      if (assignment.find('=') == std::string::npos || assignment.front() == '=') {
        throw Error(ErrorCode::invalid_argument,
                    where + ": env entry '" + assignment + "' is not NAME=VALUE");
      }
    }
    if (image.languages.empty()) throw Error(ErrorCode::invalid_argument, where + ": no languages");
    catalog.images_[name] = std::move(image);
  }
  if (!catalog.kernels_.count(catalog.default_kernel_)) {
    throw Error(ErrorCode::invalid_argument,
                manifest_path + ": default kernel '" + catalog.default_kernel_ + "' is not listed");
  }
  return catalog;
}

const vmm::KernelImage& ImageCatalog::kernel(const std::string& name) const {
  const std::string& wanted = name.empty() ? default_kernel_ : name;
  auto it = kernels_.find(wanted);
  if (it == kernels_.end()) {
    throw Error(ErrorCode::invalid_argument,
                "unknown kernel '" + wanted + "' (available: " + listed(keys_of(kernels_)) + ")");
  }
  require_file(it->second.path, "kernel");
  require_file(it->second.initramfs, "initramfs");
  return it->second;
}

RootfsImage ImageCatalog::image(const std::string& name) const {
  auto it = images_.find(name);
  if (it == images_.end()) {
    std::vector<std::string> names = keys_of(images_);
    if (!imported_dir_.empty()) {
      image::ImageStore store(imported_dir_);
      if (auto imported = store.find(name)) {
        require_file(imported->rootfs, "root filesystem image");
        return imported_image(*imported);
      }
      for (const auto& other : store.list()) names.push_back(other.name);
    }
    throw Error(ErrorCode::invalid_argument,
                "unknown image '" + name + "' (available: " + listed(names) + ")");
  }
  require_file(it->second.path, "root filesystem image");
  return it->second;
}

std::vector<RootfsImage> ImageCatalog::all_images() const {
  std::vector<RootfsImage> all;
  for (const auto& entry : images_) all.push_back(entry.second);
  if (!imported_dir_.empty()) {
    for (const auto& stored : image::ImageStore(imported_dir_).list()) {
      if (!images_.count(stored.name)) all.push_back(imported_image(stored));
    }
  }
  return all;
}

void choose_image(const ImageCatalog& catalog, RunRequest& request) {
  if (request.image.empty()) request.image = find_language(request.language).name;
  const RootfsImage image = catalog.image(request.image);
  if (request.language.empty()) request.language = image.languages.front();
  const std::string& language = find_language(request.language).name;
  if (std::find(image.languages.begin(), image.languages.end(), language) == image.languages.end()) {
    throw Error(ErrorCode::invalid_argument, "image '" + image.name + "' has no " + language +
                                                 " interpreter (its languages: " + listed(image.languages) +
                                                 ")");
  }
  request.image_env = image.env;
}

}  // namespace airlock::engine

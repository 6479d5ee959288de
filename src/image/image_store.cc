#include "image/image_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "image/image_name.h"
#include "image/oci_source.h"
#include "image/rootfs_image.h"

namespace airlock::image {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kImportPrefix = ".import-";

std::vector<std::string> strings_of(const json& list) {
  std::vector<std::string> values;
  if (!list.is_array()) return values;
  for (const auto& value : list) {
    if (value.is_string()) values.push_back(value.get<std::string>());
  }
  return values;
}

// The config's environment, checked: NAME=VALUE each.
std::vector<std::string> config_env(const json& config) {
  std::vector<std::string> env;
  if (!config.contains("config") || !config["config"].is_object()) return env;
  for (const auto& assignment : strings_of(config["config"].value("Env", json::array()))) {
    if (assignment.find('=') == std::string::npos || assignment.front() == '=') {
      throw Error(ErrorCode::invalid_argument,
                  "the image config's Env has '" + assignment + "', not NAME=VALUE");
    }
    env.push_back(assignment);
  }
  return env;
}

// The language whose program the image's own command starts, if it is one
// of `languages`; else the shell; else the first.
std::vector<std::string> ordered_by_command(
    std::vector<std::string> languages, const json& config,
    const std::vector<std::pair<std::string, std::string>>& interpreters) {
  std::string command;
  if (config.contains("config") && config["config"].is_object()) {
    for (const char* key : {"Entrypoint", "Cmd"}) {
      auto parts = strings_of(config["config"].value(key, json::array()));
      if (!parts.empty()) {
        command = parts.front();
        break;
      }
    }
  }
  std::string first;
  const std::string program = command.substr(command.rfind('/') + 1);
  for (const auto& [language, path] : interpreters) {
    const std::string ours = path.substr(path.rfind('/') + 1);
    if (!program.empty() && program.rfind(ours, 0) == 0 &&
        std::count(languages.begin(), languages.end(), language)) {
      first = language;
    }
  }
  if (first.empty() && std::count(languages.begin(), languages.end(), "shell")) first = "shell";
  auto it = std::find(languages.begin(), languages.end(), first);
  if (it != languages.end()) std::rotate(languages.begin(), it, it + 1);
  return languages;
}

}  // namespace

json to_json(const StoredImage& image) {
  return {{"name", image.name},     {"digest", image.digest}, {"content_digest", image.content_digest},
          {"source", image.source}, {"format", image.format}, {"languages", image.languages},
          {"env", image.env},       {"bytes", image.bytes},   {"created", image.created},
          {"rootfs", image.rootfs}};
}

ImageStore::ImageStore(std::string directory) : directory_(std::move(directory)) {}

std::optional<StoredImage> ImageStore::find(const std::string& name) const {
  check_image_name(name);
  const std::string dir = directory_ + "/" + name;
  std::error_code ec;
  if (!fs::is_regular_file(dir + "/image.json", ec)) return std::nullopt;
  json document = json::parse(read_file(dir + "/image.json", 1 << 20), nullptr, false);
  if (!document.is_object()) throw Error(ErrorCode::io, dir + "/image.json is damaged; remove the image");
  StoredImage image;
  image.name = name;
  image.digest = document.value("digest", "");
  image.content_digest = document.value("content_digest", "");
  image.source = document.value("source", "");
  image.format = document.value("format", "");
  image.languages = strings_of(document.value("languages", json::array()));
  image.env = strings_of(document.value("env", json::array()));
  image.bytes = document.value("bytes", uint64_t{0});
  image.created = document.value("created", int64_t{0});
  image.rootfs = dir + "/rootfs.ext4";
  if (image.languages.empty())
    throw Error(ErrorCode::io, dir + "/image.json lists no languages; remove the image");
  return image;
}

std::vector<StoredImage> ImageStore::list() const {
  std::vector<StoredImage> images;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.front() == '.') continue;
    try {
      if (auto image = find(name)) images.push_back(std::move(*image));
    } catch (const Error&) {
      // Not one of ours, or damaged: `image rm` still takes it by name.
    }
  }
  std::sort(images.begin(), images.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return images;
}

void ImageStore::remove(const std::string& name) {
  check_image_name(name);
  const std::string dir = directory_ + "/" + name;
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error(ErrorCode::not_found, "no imported image '" + name + "'");
  // Out of the name's way first, so a reader sees it whole or not at all.
  TempDir doomed = TempDir::create(directory_, kImportPrefix);
  fs::rename(dir, doomed.path() + "/gone", ec);
  if (ec) throw Error(ErrorCode::io, "cannot remove image " + name + ": " + ec.message());
}

ImportResult ImageStore::import(const std::string& source_path, const ImportOptions& options) {
  check_image_name(options.name);
  make_directories(directory_, 0755);
  reap_stale_dirs(directory_, kImportPrefix);
  const std::string final_dir = directory_ + "/" + options.name;
  std::error_code ec;
  if (!options.replace && fs::exists(final_dir, ec)) {
    throw Error(ErrorCode::conflict,
                "an image named '" + options.name + "' exists; remove it first or replace it");
  }
  TempDir work = TempDir::create(directory_, kImportPrefix);
  ImageSource source = read_image_source(source_path, work.path(), options.limits);
  if (!options.source_label.empty() && source.format == "oci-layout") source.format = "registry";

  ImportResult result;
  StoredImage& image = result.image;
  image.name = options.name;
  image.digest = source.digest;
  image.content_digest = source.content_digest;
  image.source = options.source_label.empty() ? fs::absolute(source_path, ec).string() : options.source_label;
  image.format = source.format;
  image.env = config_env(source.config);
  image.created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string out = work.path() + "/image";
  if (::mkdir(out.c_str(), 0755) < 0) throw_errno("mkdir", out);

  for (const auto& other : list()) {
    if (other.content_digest != image.content_digest || other.name == image.name) continue;
    if (::link(other.rootfs.c_str(), (out + "/rootfs.ext4").c_str()) == 0) {
      image.languages = other.languages;
      result.reused = true;
      break;
    }
  }
  if (!result.reused) {
    const std::string root = work.path() + "/root";
    if (::mkdir(root.c_str(), 0700) < 0) throw_errno("mkdir", root);
    RootTree tree(root);
    for (size_t i = 0; i < source.layers.size(); ++i) {
      tree.apply_layer(source.layers[i], "layer " + std::to_string(i + 1), options.limits, result.report);
    }
    result.report.linked = link_interpreters(tree, options.interpreters, image.env);
    prepare_for_airlock(tree);
    image.languages =
        ordered_by_command(languages_in(tree, options.interpreters), source.config, options.interpreters);
    if (image.languages.empty()) {
      std::string wanted;
      for (const auto& [language, path] : options.interpreters) {
        wanted += (wanted.empty() ? "" : ", ") + path + " (" + language + ")";
      }
      throw Error(ErrorCode::invalid_argument,
                  "the image has none of the programs airlock runs code with: " + wanted);
    }
    tree.settle_modes(/*owner_access=*/::geteuid() != 0);
    build_ext4(tree, out + "/rootfs.ext4", options.name);
  }
  struct stat st {};
  if (::stat((out + "/rootfs.ext4").c_str(), &st) == 0)
    image.bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  write_file(out + "/image.json", to_json(image).dump(2) + "\n", 0644);

  // Into place in one step; an image it replaces takes the work
  // directory's place and goes with it.
  if (fs::exists(final_dir, ec)) {
    if (::renameat2(AT_FDCWD, out.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) < 0) {
      throw_errno("rename", final_dir);
    }
  } else {
    fs::rename(out, final_dir, ec);
    if (ec) throw Error(ErrorCode::io, "cannot store image " + options.name + ": " + ec.message());
  }
  image.rootfs = final_dir + "/rootfs.ext4";
  return result;
}

}  // namespace airlock::image

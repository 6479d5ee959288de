#include "image/oci_source.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"

namespace airlock::image {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxDocumentBytes = 4 << 20;  // a manifest, index or config

bool is_manifest_type(const std::string& type) {
  return type == "application/vnd.oci.image.manifest.v1+json" ||
         type == "application/vnd.docker.distribution.manifest.v2+json";
}

bool is_index_type(const std::string& type) {
  return type == "application/vnd.oci.image.index.v1+json" ||
         type == "application/vnd.docker.distribution.manifest.list.v2+json";
}

// Layers we can apply: tars, plain or compressed (libarchive tells which).
bool is_layer_type(const std::string& type) {
  return type == "application/vnd.oci.image.layer.v1.tar" ||
         type == "application/vnd.oci.image.layer.v1.tar+gzip" ||
         type == "application/vnd.oci.image.layer.v1.tar+zstd" ||
         type == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         type == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         type == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
         type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

json parse_document(const std::string& path, const std::string& what) {
  json document = json::parse(read_file(path, kMaxDocumentBytes), nullptr, false);
  if (document.is_discarded()) throw Error(ErrorCode::invalid_argument, what + " is not JSON");
  return document;
}

std::string string_field(const json& object, const char* key, const std::string& what) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_string()) {
    throw Error(ErrorCode::invalid_argument, what + " has no string '" + key + "'");
  }
  return object[key].get<std::string>();
}

// Files of an unpacked archive or a layout, found inside it the way a
// layer's names are: no link leads out.
class Layout {
 public:
  explicit Layout(std::string directory) : tree_(std::move(directory)) {}

  bool has(const std::string& name) const { return !tree_.find(name).empty(); }

  std::string file(const std::string& name, const std::string& what) const {
    if (name.empty() || name.front() == '/' || name.find("..") != std::string::npos) {
      throw Error(ErrorCode::invalid_argument, what + " names '" + name + "', outside the image");
    }
    const std::string path = tree_.find(name);
    struct stat st {};
    if (path.empty() || ::stat(path.c_str(), &st) < 0 || !S_ISREG(st.st_mode)) {
      throw Error(ErrorCode::invalid_argument, what + " '" + name + "' is missing from the image");
    }
    return path;
  }

  // The blob `digest` names, checked against it.
  std::string blob(const std::string& digest, const std::string& what) const {
    const std::string prefix = "sha256:";
    const std::string hex = digest.rfind(prefix, 0) == 0 ? digest.substr(prefix.size()) : "";
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      throw Error(ErrorCode::invalid_argument,
                  what + " has digest '" + digest + "', not sha256:<64 hex digits>");
    }
    const std::string path = file("blobs/sha256/" + hex, what + " " + digest);
    const std::string actual = sha256_of_file(path);
    if (actual != digest) {
      throw Error(ErrorCode::invalid_argument,
                  what + " " + digest + " is damaged: its contents hash to " + actual);
    }
    return path;
  }

 private:
  RootTree tree_;
};

bool for_this_machine(const json& descriptor) {
  if (!descriptor.contains("platform") || !descriptor["platform"].is_object()) return true;
  const json& platform = descriptor["platform"];
  return platform.value("os", "") == "linux" && platform.value("architecture", "") == "amd64";
}

// The image manifest an index leads to for linux/amd64 (nested indexes followed).
json pick_manifest(const Layout& layout, const json& index, int depth) {
  if (depth > 4) throw Error(ErrorCode::invalid_argument, "the image's indexes nest too deep");
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    throw Error(ErrorCode::invalid_argument, "the image's index lists no manifests");
  }
  std::vector<std::string> platforms;
  for (const json& descriptor : index["manifests"]) {
    const std::string type = descriptor.value("mediaType", "");
    if (!for_this_machine(descriptor)) {
      const json& platform = descriptor["platform"];
      platforms.push_back(platform.value("os", "?") + "/" + platform.value("architecture", "?"));
      continue;
    }
    const std::string digest = string_field(descriptor, "digest", "a manifest of the index");
    if (is_index_type(type)) {
      return pick_manifest(layout, parse_document(layout.blob(digest, "index"), "index " + digest),
                           depth + 1);
    }
    if (is_manifest_type(type)) {
      return parse_document(layout.blob(digest, "manifest"), "manifest " + digest);
    }
  }
  std::string listed;
  for (const auto& platform : platforms) listed += (listed.empty() ? "" : ", ") + platform;
  throw Error(ErrorCode::invalid_argument,
              "the image has no linux/amd64 manifest" +
                  (listed.empty() ? std::string() : " (it has: " + listed + ")"));
}

void check_platform(const json& config) {
  if (!config.is_object()) throw Error(ErrorCode::invalid_argument, "the image config is not an object");
  const std::string arch = config.value("architecture", "amd64");
  const std::string os = config.value("os", "linux");
  if (arch != "amd64" || os != "linux") {
    throw Error(ErrorCode::invalid_argument,
                "the image is for " + os + "/" + arch + "; airlock's guests are linux/amd64");
  }
}

ImageSource read_oci(const Layout& layout, std::string format) {
  const json index = parse_document(layout.file("index.json", "the layout's"), "index.json");
  const json manifest = pick_manifest(layout, index, 0);
  ImageSource source;
  source.format = std::move(format);
  const json config_descriptor = manifest.contains("config") ? manifest["config"] : json();
  source.digest = string_field(config_descriptor, "digest", "the manifest's config");
  source.config = parse_document(layout.blob(source.digest, "config"), "config " + source.digest);
  if (!manifest.contains("layers") || !manifest["layers"].is_array()) {
    throw Error(ErrorCode::invalid_argument, "the manifest lists no layers");
  }
  for (const json& layer : manifest["layers"]) {
    const std::string type = string_field(layer, "mediaType", "a layer");
    const std::string digest = string_field(layer, "digest", "a layer");
    if (!is_layer_type(type)) {
      throw Error(ErrorCode::invalid_argument,
                  "layer " + digest + " is of type " + type + ", which airlock cannot apply");
    }
    source.layers.push_back(layout.blob(digest, "layer"));
  }
  return source;
}

ImageSource read_docker(const Layout& layout) {
  const json manifest = parse_document(layout.file("manifest.json", "the archive's"), "manifest.json");
  if (!manifest.is_array() || manifest.empty()) {
    throw Error(ErrorCode::invalid_argument, "the archive's manifest.json lists no image");
  }
  const json& image = manifest.front();
  ImageSource source;
  source.format = "docker-archive";
  const std::string config_path = layout.file(string_field(image, "Config", "manifest.json"), "config");
  source.digest = sha256_of_file(config_path);
  source.config = parse_document(config_path, "the image config");
  if (!image.contains("Layers") || !image["Layers"].is_array()) {
    throw Error(ErrorCode::invalid_argument, "manifest.json lists no Layers");
  }
  for (const json& layer : image["Layers"]) {
    if (!layer.is_string())
      throw Error(ErrorCode::invalid_argument, "manifest.json has a layer that is not a name");
    source.layers.push_back(layout.file(layer.get<std::string>(), "layer"));
  }
  return source;
}

}  // namespace

namespace {

using DigestContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

DigestContext sha256_context() {
  DigestContext context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr);
  return context;
}

std::string finish(const DigestContext& context) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest, &length);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text = "sha256:";
  for (unsigned int i = 0; i < length; ++i) text += {kDigits[digest[i] >> 4], kDigits[digest[i] & 15]};
  return text;
}

}  // namespace

std::string sha256_of_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  DigestContext context = sha256_context();
  std::vector<char> buffer(1 << 20);
  for (;;) {
    auto n = read_some(fd.get(), buffer.data(), buffer.size());
    if (!n || *n == 0) break;
    EVP_DigestUpdate(context.get(), buffer.data(), *n);
  }
  return finish(context);
}

std::string sha256_of(std::string_view bytes) {
  DigestContext context = sha256_context();
  EVP_DigestUpdate(context.get(), bytes.data(), bytes.size());
  return finish(context);
}

ImageSource read_image_source(const std::string& path, const std::string& work, const UnpackLimits& limits) {
  std::error_code ec;
  std::string directory = path;
  std::string format = "oci-layout";
  if (!fs::is_directory(path, ec)) {
    if (!fs::is_regular_file(path, ec)) {
      throw Error(ErrorCode::not_found, path + " is neither an image archive nor an OCI layout directory");
    }
    directory = work + "/archive";
    if (::mkdir(directory.c_str(), 0700) < 0) throw_errno("mkdir", directory);
    UnpackReport ignored;
    RootTree(directory).apply_layer(path, path, limits, ignored);
    format = "oci-archive";
  }
  Layout layout(directory);
  const bool oci = layout.has("index.json");
  if (!oci && !layout.has("manifest.json")) {
    throw Error(
        ErrorCode::invalid_argument,
        path + " is neither an OCI image (no index.json) nor a docker save " + "archive (no manifest.json)");
  }
  ImageSource source;
  try {
    source = oci ? read_oci(layout, format) : read_docker(layout);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::invalid_argument,
                path + " has a malformed manifest, index or config: " + e.what());
  }
  std::string listing = source.digest + "\n";
  for (const auto& layer : source.layers) listing += sha256_of_file(layer) + "\n";
  source.content_digest = sha256_of(listing);
  if (!oci && format == "oci-layout") source.format = "docker-directory";
  check_platform(source.config);
  return source;
}

}  // namespace airlock::image

// airlock image import | pull | ls | rm: images brought by users (OCI
// layouts and archives, docker save tars, registries), kept where this
// user's engine and airlockd find them (images/README.md).
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/verbs.h"
#include "common/error.h"
#include "common/temp_dir.h"
#include "engine/images.h"
#include "engine/languages.h"
#include "engine/paths.h"
#include "image/image_store.h"
#include "image/registry.h"

namespace airlock::cli {

namespace {

image::ImageStore store() {
  return image::ImageStore(engine::imported_images_dir(engine::default_cache_dir()));
}

std::string mib(uint64_t bytes) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1 << 20) << " MiB";
  return text.str();
}

std::string joined(const std::vector<std::string>& values) {
  std::string text;
  for (const auto& value : values) text += (text.empty() ? "" : ",") + value;
  return text;
}

// What import and pull share.
struct Options {
  std::string source, name, images;
  bool replace = false, json = false, insecure = false;
  uint64_t max_size_mb = 8192;
};

void add_common_options(CLI::App& verb, Options& options) {
  verb.add_option("--name", options.name, "What runs call it (--image NAME)")->required();
  verb.add_flag("--replace", options.replace, "Put it in place of an imported image of that name");
  verb.add_option("--max-size-mb", options.max_size_mb,
                  "Refuse an image whose files unpack to more (default 8192)");
  verb.add_option("--images", options.images, "Path of the image manifest (default: beside the binary)");
  verb.add_flag("--json", options.json, "Print the image and what the import changed as JSON");
}

image::ImportOptions import_options(const Options& o) {
  // A built image's name stays the built image's.
  auto catalog = engine::ImageCatalog::load(engine::find_manifest(o.images));
  if (catalog.images().count(o.name)) {
    throw Error(ErrorCode::invalid_argument, "'" + o.name + "' is the name of a built image; pick another");
  }
  image::ImportOptions options;
  options.name = o.name;
  options.replace = o.replace;
  options.limits.max_bytes = o.max_size_mb << 20;
  options.interpreters = engine::language_programs();
  return options;
}

int report(const image::ImportResult& result, bool as_json) {
  if (as_json) {
    std::cout << nlohmann::json{{"image", image::to_json(result.image)},
                                {"reused", result.reused},
                                {"unpacked_bytes", result.report.bytes},
                                {"entries", result.report.entries},
                                {"dropped", result.report.dropped},
                                {"setid_cleared", result.report.setid_cleared},
                                {"linked", result.report.linked}}
                     .dump()
              << "\n";
    return 0;
  }
  for (const auto& line : result.report.dropped) std::cerr << "airlock: " << line << "\n";
  for (const auto& link : result.report.linked) std::cerr << "airlock: linked " << link << "\n";
  for (const auto& path : result.report.setid_cleared) {
    std::cerr << "airlock: setuid/setgid bit cleared on " << path << "\n";
  }
  std::cout << result.image.name << " " << result.image.digest << " (" << result.image.format
            << "): languages " << joined(result.image.languages) << ", " << mib(result.image.bytes)
            << (result.reused ? ", the same image as one already imported" : "") << "\n";
  return 0;
}

int import_image(const Options& o) { return report(store().import(o.source, import_options(o)), o.json); }

int pull_image(const Options& o) {
  image::ImportOptions options = import_options(o);
  const image::ImageReference reference = image::parse_image_reference(o.source);
  image::PullOptions pull;
  pull.insecure = o.insecure;
  pull.limits = options.limits;
  image::ImageStore images = store();
  make_directories(images.directory(), 0755);
  // Under the store, named as its imports are: a killed pull is reaped too.
  TempDir download = TempDir::create(images.directory(), ".import-");
  image::pull_to_layout(reference, download.file("layout"), pull);
  options.source_label = reference.text();
  return report(images.import(download.file("layout"), options), o.json);
}

int list_images(bool as_json) {
  const auto images = store().list();
  if (!as_json) {
    std::cout << std::left << std::setw(24) << "NAME" << std::setw(22) << "DIGEST" << std::setw(26)
              << "LANGUAGES" << std::setw(12) << "SIZE"
              << "SOURCE\n";
  }
  for (const auto& image : images) {
    if (as_json) {
      std::cout << image::to_json(image).dump() << "\n";
      continue;
    }
    std::cout << std::left << std::setw(24) << image.name << std::setw(22) << image.digest.substr(0, 19)
              << std::setw(26) << joined(image.languages) << std::setw(12) << mib(image.bytes) << image.source
              << "\n";
  }
  return 0;
}

int remove_images(const std::vector<std::string>& names) {
  for (const auto& name : names) {
    store().remove(name);
    std::cout << name << "\n";
  }
  return 0;
}

}  // namespace

void add_image_verbs(CLI::App& app, Action& action) {
  CLI::App* verb =
      app.add_subcommand("image", "Import, pull, list and remove your own images (OCI, docker save)");
  verb->require_subcommand(1);

  auto imported = std::make_shared<Options>();
  CLI::App* import = verb->add_subcommand(
      "import", "Make an image from a docker save tar, an OCI archive or an OCI layout directory");
  import->add_option("source", imported->source, "The tar or the layout directory")->required();
  add_common_options(*import, *imported);
  import->callback([&action, imported] { action = [imported] { return import_image(*imported);
};
}  // namespace airlock::cli
);

auto pulled = std::make_shared<Options>();
CLI::App* pull = verb->add_subcommand("pull", "Make an image from a registry's (the OCI distribution API)");
pull->add_option("reference", pulled->source,
                 "registry/repository:tag or @sha256:... (Docker Hub if no registry)")
    ->required();
pull->add_flag("--insecure", pulled->insecure, "Plain HTTP (loopback registries always are)");
add_common_options(*pull, *pulled);
pull->callback([&action, pulled] { action = [pulled] { return pull_image(*pulled); }; });

auto ls_json = std::make_shared<bool>(false);
CLI::App* ls = verb->add_subcommand("ls", "List imported images");
ls->add_flag("--json", *ls_json, "One JSON object per line");
ls->callback([&action, ls_json] { action = [ls_json] { return list_images(*ls_json); }; });

auto names = std::make_shared<std::vector<std::string>>();
CLI::App* rm = verb->add_subcommand("rm", "Remove imported images (running sandboxes keep theirs)");
rm->add_option("name", *names, "Image names")->required();
rm->callback([&action, names] { action = [names] { return remove_images(*names); }; });
}

}  // namespace airlock::cli
